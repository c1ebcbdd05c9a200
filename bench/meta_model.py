"""Models without weights: built from ``model.architecture`` on the meta device, for counting.

The planner (``python -m bench.plan``) applies each method to such a model with the providers' own code
(:func:`bench.methods.apply_method`), so trainable parameters and the extra FLOPs of a forward pass are
those a real run would report, with no download, no memory and no GPU. peft builds every tuner the
PEFT-Bench grid uses on meta tensors (soft-prompt encoders included: prompt embeddings, P-Tuning's LSTM,
prefix projections), so no count is computed by formula.
"""

from __future__ import annotations

import contextlib
import dataclasses

from omegaconf import DictConfig, OmegaConf

from bench.config.schema import ArchitectureConfig, ModelConfig
from bench.errors import ConfigError


def architecture_of(model_cfg: ModelConfig | DictConfig) -> dict:
    """The HF config fields of ``model_cfg``: its ``architecture`` block, or the tiny model's ``tiny``."""
    if model_cfg.loader == "tiny_random":
        tiny = model_cfg.tiny
        return {
            "model_type": "llama",
            "hidden_size": tiny.hidden_size,
            "num_hidden_layers": tiny.num_hidden_layers,
            "num_attention_heads": tiny.num_attention_heads,
            "num_key_value_heads": tiny.num_key_value_heads,
            "intermediate_size": tiny.intermediate_size,
            "vocab_size": tiny.vocab_size,  # the trained BPE fills its whole vocabulary
            "tie_word_embeddings": True,
            "max_position_embeddings": 1024,
        }
    arch = model_cfg.architecture
    if OmegaConf.is_config(arch):
        arch = OmegaConf.to_container(arch, resolve=True)
    else:
        arch = dataclasses.asdict(arch)
    if not arch.get("model_type"):
        raise ConfigError(
            f"model {model_cfg.name!r} has no model.architecture, so its parameters and FLOPs cannot be "
            f"counted without loading it. Add an `architecture:` block to its YAML (the fields of "
            f"{ArchitectureConfig.__name__}: model_type, hidden_size, num_hidden_layers, ... from its "
            "config.json), or pass them as model.architecture.<field>=... overrides."
        )
    return {key: value for key, value in arch.items() if value is not None}


def build_meta_model(model_cfg: ModelConfig | DictConfig, dtype: str | None = None):
    """The causal LM of ``model_cfg`` with every tensor on the meta device (shapes only, no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = architecture_of(model_cfg)
    model_type = fields.pop("model_type")
    try:
        config = AutoConfig.for_model(model_type, **fields)
    except ValueError as err:
        raise ConfigError(f"model {model_cfg.name!r}: model.architecture: {err}") from err
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype or model_cfg.dtype))


@contextlib.contextmanager
def _autocast_off_on_meta():
    """Rotary embeddings open ``torch.autocast(device_type=x.device.type, enabled=False)``, and autocast
    has no "meta" device; a disabled autocast on the CPU is the same no-op, so it stands in."""
    import torch

    real = torch.autocast

    class _Autocast(real):
        def __init__(self, device_type, *args, **kwargs):
            super().__init__("cpu" if device_type == "meta" else device_type, *args, **kwargs)

    torch.autocast = _Autocast
    try:
        yield
    finally:
        torch.autocast = real


def meta_forward_flops(model, probe_tokens: int = 512) -> int:
    """FLOPs of one forward pass (batch 1, ``probe_tokens`` tokens) of a meta model, by torch's counter.

    The same count as :func:`bench.measure.forward_flops` on real weights (tested), which a run records:
    without an attention mask (an all-ones mask makes transformers read its values, which meta tensors
    do not have), the same causal attention runs.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    input_ids = torch.zeros((1, probe_tokens), dtype=torch.long, device="meta")
    was_training = model.training
    model.eval()
    try:
        with _autocast_off_on_meta(), torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(input_ids=input_ids)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
