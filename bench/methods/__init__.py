"""Apply a PEFT method to a model, by ``method.provider`` (a :class:`Provider` in ``PROVIDERS``).

Providers: ``peft`` (any HF peft tuner by its ``peft_type``; ``method.options`` are the peft config
class's own fields), ``plugin`` (a folder under ``plugins/`` registered with peft, see
:mod:`bench.plugins`), ``adapters`` (the ``adapters`` library's bottleneck adapters), ``full`` (every
parameter trains: the reference; GaLore is full training with another optimizer) and ``none`` (the
frozen base model, evaluation only). Method-specific training knobs live in ``method.training``
(:data:`TRAINING_KEYS`), quantized loading (QLoRA) in ``method.quantization``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench.errors import ConfigError
from bench.methods import adapters_provider, basic, peft_provider, plugin_provider  # noqa: F401  (registers)
from bench.methods.base import PROVIDERS, Provider, unknown_field_error
from bench.methods.peft_provider import build_peft_config, peft_config_class
from bench.methods.requirements import check_requirements, load_kwargs

__all__ = [
    "PROVIDERS",
    "TRAINING_KEYS",
    "Provider",
    "apply_method",
    "build_peft_config",
    "check_requirements",
    "count_parameters",
    "load_method",
    "load_kwargs",
    "merged_for_inference",
    "peft_config_class",
    "save_method",
    "validate_method",
]

# method.training keys -> what they do (read by bench.training).
log = logging.getLogger(__name__)

TRAINING_KEYS = {
    "loraplus_lr_ratio": "LoRA+: lr_B / lr_A (peft's create_loraplus_optimizer)",
    "loraplus_lr_embedding": "LoRA+: learning rate of LoRA embedding layers",
    "optim": "a transformers optimizer name replacing trainer.optim (e.g. galore_adamw)",
    "optim_target_modules": "modules the optimizer treats specially (GaLore's projected targets)",
    "optim_args": "extra optimizer arguments, 'k=v, k=v' (e.g. GaLore's rank)",
}


def validate_method(method: DictConfig) -> None:
    """Check a method config without a model or a GPU (start-up and the config tests)."""
    provider = PROVIDERS.get(method.provider)
    provider.validate(method)
    training = OmegaConf.to_container(method.training, resolve=True) if method.training else {}
    for key in training:
        if key not in TRAINING_KEYS:
            raise unknown_field_error(method, "training", key, TRAINING_KEYS, "the method training knobs")
    if "loraplus_lr_ratio" in training:
        if method.provider != "peft" or str(method.peft_type).upper() != "LORA":
            raise ConfigError(
                f"method {method.name!r}: LoRA+ (method.training.loraplus_lr_ratio) needs a LoRA method."
            )
        if float(training["loraplus_lr_ratio"]) < 1:
            raise ConfigError(f"method {method.name!r}: method.training.loraplus_lr_ratio must be >= 1.")
    if method.quantization and method.provider != "peft":
        raise ConfigError(f"method {method.name!r}: method.quantization needs provider 'peft' (QLoRA-style).")


def apply_method(model, method: DictConfig):
    """Return the model wrapped/frozen for ``method``, with exactly the method's parameters trainable,
    in fp32 whatever the base dtype (master weights: a bf16 base trains its update in fp32)."""
    from bench.models import trainable_to_fp32

    tuned = PROVIDERS.get(method.provider).apply(model, method)
    trainable_to_fp32(tuned)
    return tuned


def save_method(model, method: DictConfig, folder: str | Path) -> bool:
    """Save the method's weights with its library's own saving; False when the method has none."""
    save = PROVIDERS.get(method.provider).save
    if save is None:
        return False
    save(model, method, Path(folder))
    return True


def load_method(base_model, method: DictConfig, folder: str | Path):
    """The tuned model from ``base_model`` and a folder written by :func:`save_method`."""
    load = PROVIDERS.get(method.provider).load
    if load is None:
        return base_model
    return load(base_model, method, Path(folder))


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; shared (tied) tensors count once."""
    seen, trainable, total = set(), 0, 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return trainable, total


@contextlib.contextmanager
def merged_for_inference(model):
    """Fold a peft adapter into the base weights while evaluating, as deployment would (no extra
    matmuls per layer), and unfold it afterwards (peft subtracts it again: base weights come back up to
    float rounding) so the model trains/saves as before.

    Only for peft tuners that can merge (LoRA, DoRA, PiSSA, IA3, OFT, ...) on unquantized fp32 weights;
    soft prompts, adapters-library modules and tuners without a merge stay as they are. A bf16 (or fp16)
    base is evaluated unmerged: W + dW rounded to bf16 loses what of dW lies below W's resolution (26%
    relative error at |dW| ~ 1e-4 on tiny-random), so the merged model would not be the one trained;
    merging in fp32 and casting back rounds the same way, and keeping merged layers in fp32 would double
    their memory. Unmerged, the adapter's own fp32 path runs under autocast exactly as in training.
    """
    from bench.models import autocast_dtype

    tuner = getattr(model, "base_model", None)
    mergeable = (
        hasattr(model, "active_peft_config")
        and not model.active_peft_config.is_prompt_learning
        and hasattr(tuner, "merge_adapter")
        and not getattr(model, "is_quantized", False)
        and not getattr(tuner, "is_quantized", False)
        and autocast_dtype(model) is None
    )
    if mergeable:
        try:
            model.merge_adapter()
        except (NotImplementedError, ValueError, AttributeError, TypeError) as err:
            log.info("evaluating unmerged: %s cannot merge (%s)", type(tuner).__name__, err)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "already unmerged" for layers that did not merge
                model.unmerge_adapter()
            mergeable = False
    try:
        yield model
    finally:
        if mergeable:
            with warnings.catch_warnings():  # IA3 warns that dividing back can be inexact: known, accepted
                warnings.filterwarnings("ignore", message="Unmerge result can be inaccurate")
                model.unmerge_adapter()
