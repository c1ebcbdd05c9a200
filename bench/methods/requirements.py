"""What a method needs from the machine (packages, a GPU), checked when a run starts, before weights load.

Kept apart from :func:`bench.methods.validate_method` so configs still validate on machines that cannot run
them (the config tests compose every method on CPU). Also the quantized loading hook for QLoRA.
"""

from __future__ import annotations

import importlib.util

from omegaconf import DictConfig, OmegaConf

from bench.errors import ConfigError

# transformers optimizer names -> the package they import.
_OPTIM_PACKAGES = {"galore": ("galore_torch", "galore-torch"), "apollo": ("apollo_torch", "apollo-torch")}


def check_requirements(method: DictConfig) -> None:
    """Raise a :class:`ConfigError` saying what is missing for ``method`` on this machine."""
    from bench.methods.base import PROVIDERS

    PROVIDERS.get(method.provider).requirements(method)
    optim = str((method.training or {}).get("optim") or "")
    for stem, (module, pip_name) in _OPTIM_PACKAGES.items():
        if optim.startswith(stem) and importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"method {method.name!r} uses the optimizer {optim!r}, which needs the package {pip_name!r} "
                f"(import {module}); it is not installed. Run `pip install {pip_name}`."
            )
    if method.quantization:
        import torch

        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(
                f"method {method.name!r} needs the package 'bitsandbytes' for its quantized base model; it "
                "is not installed. Run `pip install bitsandbytes` (CUDA GPU, or its CPU backend), "
                "or use method=lora."
            )
        if not torch.cuda.is_available() and not bitsandbytes_on_cpu():
            raise ConfigError(
                f"method {method.name!r} loads the base model quantized with bitsandbytes, which needs a "
                f"CUDA GPU or bitsandbytes' CPU backend (>= 0.48); torch {torch.__version__} sees no GPU and "
                "this bitsandbytes cannot quantize on the CPU. Run it on a GPU machine (hardware=gpu), "
                "or use method=lora here."
            )


def bitsandbytes_on_cpu() -> bool:
    """Whether the installed bitsandbytes quantizes to 4 bit on the CPU (its CPU backend, 0.48+)."""
    try:
        import torch
        from bitsandbytes.functional import quantize_4bit

        quantize_4bit(torch.zeros(64, 64), blocksize=64, quant_type="nf4")
    except Exception:  # an old wheel without the CPU backend raises anything from ImportError to RuntimeError
        return False
    return True


def quantization_config(method: DictConfig):
    """``transformers.BitsAndBytesConfig`` from ``method.quantization`` (dtype names become torch dtypes)."""
    import torch
    from transformers import BitsAndBytesConfig

    values = OmegaConf.to_container(method.quantization, resolve=True)
    for key, value in values.items():
        if key.endswith("_dtype") and isinstance(value, str):
            values[key] = getattr(torch, value)
    return BitsAndBytesConfig(**values)


def load_kwargs(method: DictConfig) -> dict:
    """Extra ``from_pretrained`` arguments the method needs for its base model: QLoRA loads it 4-bit on
    the current GPU, or on the CPU with bitsandbytes' CPU backend (``quantization_config`` + ``device_map``);
    every other method needs none."""
    if not method.quantization:
        return {}
    import torch

    device = torch.cuda.current_device() if torch.cuda.is_available() else "cpu"  # CPU: bitsandbytes' backend
    return {"quantization_config": quantization_config(method), "device_map": {"": device}}
