"""QLoRA's loading hook: method.quantization reaches from_pretrained while the base loads, then is undone."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import AutoModelForCausalLM

from bench.methods import load_kwargs
from bench.methods import requirements as req


@pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is None, reason="BitsAndBytesConfig needs bitsandbytes installed"
)
def test_quantization_config_from_the_qlora_yaml(compose):
    config = req.quantization_config(compose("model=tiny-random", "method=qlora").method)
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


def test_qlora_load_kwargs_reach_from_pretrained(compose, cache_dir, monkeypatch):
    from bench.models import load_model_and_tokenizer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine: the current GPU
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(req, "quantization_config", lambda method: "4-bit nf4")  # needs bitsandbytes
    qlora = compose("model=tiny-random", "method=qlora")
    assert load_kwargs(qlora.method) == {"quantization_config": "4-bit nf4", "device_map": {"": 0}}
    assert load_kwargs(compose("model=tiny-random", "method=lora").method) == {}

    load_model_and_tokenizer(qlora.model, cache_dir)  # builds the tiny folder, unquantized
    calls = []
    real = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        calls.append({k: v for k, v in kwargs.items() if k in ("quantization_config", "device_map")})
        kwargs.pop("quantization_config"), kwargs.pop("device_map")  # no GPU here: load plainly
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    load_model_and_tokenizer(qlora.model, cache_dir, **load_kwargs(qlora.method))
    assert calls == [{"quantization_config": "4-bit nf4", "device_map": {"": 0}}]
