"""Check a composed config before any weights or data load; each error names the key and the fix."""

from __future__ import annotations

import re

from omegaconf import DictConfig, OmegaConf

from bench.config.schema import LABEL_TASKS, METHOD_FAMILIES, METRIC_CONVENTIONS, TASK_TYPES
from bench.errors import ConfigError


def _one_of(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; use one of: {', '.join(map(str, allowed))}.")


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"hardware.device={requested!r} but torch sees no CUDA GPU (torch {torch.__version__}). "
            "Use hardware=cpu on this machine."
        )
    return requested


def numeric_problems(cfg: DictConfig) -> list[str]:
    """Every numeric knob out of range, each with its fix (all at once: one relaunch fixes them all)."""
    t, problems = cfg.trainer, []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    for key in ("trainer.batch_size", "trainer.eval_batch_size", "trainer.gradient_accumulation_steps"):
        value = OmegaConf.select(cfg, key)
        need(value >= 1, f"{key}={value} must be at least 1.")
    need(cfg.eval.batch_size >= 1, f"eval.batch_size={cfg.eval.batch_size} must be at least 1.")
    lr = t.learning_rate if t.learning_rate is not None else cfg.method.learning_rate
    key = "trainer.learning_rate" if t.learning_rate is not None else "method.learning_rate"
    if cfg.method.provider != "none":  # method=none trains nothing (its learning rate is 0)
        need(lr > 0, f"{key}={lr} must be positive.")
    need(0.0 <= t.warmup_ratio <= 1.0, f"trainer.warmup_ratio={t.warmup_ratio} must be in [0, 1].")
    need(t.weight_decay >= 0, f"trainer.weight_decay={t.weight_decay} must be >= 0.")
    need(t.max_grad_norm >= 0, f"trainer.max_grad_norm={t.max_grad_norm} must be >= 0 (0: no clipping).")
    need(t.logging_steps >= 1, f"trainer.logging_steps={t.logging_steps} must be at least 1.")
    need(t.max_seq_length >= 1, f"trainer.max_seq_length={t.max_seq_length} must be at least 1.")
    if t.max_steps <= 0 and t.num_train_epochs <= 0:
        problems.append("set trainer.max_steps > 0 or trainer.num_train_epochs > 0.")
    if not 0.0 < t.eval_every <= 1.0 and not (t.eval_every >= 1 and float(t.eval_every).is_integer()):
        problems.append(
            f"trainer.eval_every={t.eval_every}: a fraction of the steps in (0, 1], or a step count."
        )
    elif t.eval_every > 1 and t.max_steps > 0 and t.eval_every > t.max_steps:
        problems.append(
            f"trainer.eval_every={t.eval_every} steps is more than trainer.max_steps={t.max_steps}: no "
            "validation and no checkpoint would happen; use a fraction (0.05: every 5%) or fewer steps."
        )
    if cfg.eval.max_new_tokens is not None:
        need(cfg.eval.max_new_tokens >= 1, f"eval.max_new_tokens={cfg.eval.max_new_tokens} must be >= 1.")
    name = str(cfg.model.name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or ".." in name:
        problems.append(
            f"model.name={name!r} names the model's cache folder: use letters, digits, '.', '_' and '-' "
            "only (the hub repo goes in model.hub_id)."
        )
    return problems


def check_precision(precision: str, device: str) -> None:
    """bf16 needs a GPU with bf16 support (Ampere or newer); a CPU runs it anywhere (fast only with bf16
    instructions such as avx512_bf16 or AMX)."""
    import torch

    if precision == "bf16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name()
        raise ConfigError(
            f"hardware.precision=bf16 but the GPU ({name}) has no bf16 support: "
            "use hardware.precision=fp16 or fp32."
        )


def check_eval_splits(cfg: DictConfig) -> None:
    """eval.test / eval.validation: something is evaluated (a split predicted, or the validation loss of a
    trained run with held-out rows), and a validation split exists where it is predicted."""
    ev = cfg.eval
    # without either split, a trained run still scores its held-out rows: training's validation loss
    # (best_val_loss), the objective of search=lr_loss
    val_loss = cfg.method.provider != "none" and float(cfg.dataset.val_fraction) > 0
    if not ev.test and not ev.validation and not val_loss:
        raise ConfigError(
            "eval.test=false and eval.validation=false: nothing would be evaluated (no validation loss "
            "either: method=none trains nothing, or dataset.val_fraction=0 holds out no rows); "
            "set eval.validation=true or eval.test=true."
        )
    if ev.validation and cfg.dataset.val_fraction == 0:
        raise ConfigError(
            "eval.validation=true predicts the held-out validation rows, but dataset.val_fraction=0 holds "
            "out none: set dataset.val_fraction > 0 (e.g. 0.1) or eval.validation=false."
        )
    if ev.max_validation_samples is not None and ev.max_validation_samples < 1:
        raise ConfigError(
            f"eval.max_validation_samples={ev.max_validation_samples} must be at least 1 (or null for all "
            "held-out rows)."
        )


def validate(cfg: DictConfig) -> None:
    from bench.methods import validate_method
    from bench.metrics import METRICS
    from bench.models import LOADERS

    problems = numeric_problems(cfg)
    if problems:
        raise ConfigError("\n".join(problems))
    LOADERS.get(cfg.model.loader)
    _one_of("method.family", cfg.method.family, METHOD_FAMILIES)
    _one_of("metric.convention", cfg.metric.convention, METRIC_CONVENTIONS)
    validate_method(cfg.method)

    ds = cfg.dataset
    _one_of("dataset.task_type", ds.task_type, TASK_TYPES)
    if not (ds.hub_id or ds.data_dir):
        raise ConfigError(f"dataset {ds.name!r}: set dataset.hub_id or dataset.data_dir.")
    if ds.task_type in LABEL_TASKS and not ds.label_names:
        raise ConfigError(f"dataset {ds.name!r} is a {ds.task_type} task: set dataset.label_names.")
    for name in ds.metrics:
        METRICS.get(name)
    if ds.preprocess:
        from bench.data.preprocess import PREPROCESSORS

        PREPROCESSORS.get(ds.preprocess)
    from bench.data.prompts import check_prompt_style

    check_prompt_style(ds)  # dataset.prompt_style: peftbench | paper (with a paper prompt)
    labels = list(ds.label_names or [])
    if "f1_binary" in ds.metrics and ds.pos_label not in labels:
        raise ConfigError(f"dataset {ds.name!r} lists f1_binary: set dataset.pos_label to one of {labels}.")
    if ds.headline_metric not in ds.metrics:
        raise ConfigError(
            f"dataset.headline_metric={ds.headline_metric!r} is not in dataset.metrics {list(ds.metrics)}."
        )
    if not 0.0 <= ds.val_fraction < 1.0:
        raise ConfigError(
            f"dataset.val_fraction={ds.val_fraction} must be in [0, 1) (0: no validation split, "
            "the last checkpoint is evaluated)."
        )
    for key in ("max_train_samples", "max_eval_samples"):
        if ds[key] is not None and ds[key] < 2:
            raise ConfigError(f"dataset.{key}={ds[key]} must be at least 2 (or null for all rows).")
    check_eval_splits(cfg)

    _one_of("hardware.precision", cfg.hardware.precision, ("fp32", "bf16", "fp16"))
    _one_of("eval.mode", cfg.eval.mode, ("generate", "score"))
    if cfg.eval.mode == "score" and ds.task_type not in LABEL_TASKS:
        raise ConfigError(
            f"eval.mode=score ranks label words, but dataset {ds.name!r} is a {ds.task_type} task: "
            "use eval.mode=generate."
        )
    check_precision(cfg.hardware.precision, resolve_device(cfg.hardware.device))
