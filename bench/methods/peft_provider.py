"""The ``peft`` provider: any HF peft tuner by ``method.peft_type``, configured by ``method.options``.

Three methods need more than ``get_peft_model``: QLoRA (``method.quantization``: the base is prepared for
k-bit training first), PiSSA-style inits that rewrite the base weights (the saved adapter is converted to
a plain LoRA that applies to the unmodified base) and multitask prompt tuning (its one task id, 0, is
supplied to ``forward``/``generate`` when the caller does not pass ``task_ids``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import shutil
import tempfile
import weakref
from pathlib import Path

from omegaconf import DictConfig

from bench.errors import ConfigError
from bench.methods.base import PROVIDERS, Provider, options, unknown_field_error

# Fields peftbench sets itself; a user value would be overwritten or break the run.
_RESERVED = {"task_type", "peft_type", "base_model_name_or_path", "revision", "inference_mode"}
# LoRA inits that change the base weights: saving converts the adapter against the initial state.
_BASE_REWRITING_INITS = ("pissa", "olora", "corda")
_INITIAL_ADAPTER = "_bench_initial_adapter_dir"


def peft_config_class(peft_type: str | None, method_name: str):
    from peft import PeftType
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    known = [t.name for t in PeftType if t in PEFT_TYPE_TO_CONFIG_MAPPING]
    if not peft_type or peft_type.upper() not in known:
        close = difflib.get_close_matches(str(peft_type).upper(), known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"method {method_name!r}: method.peft_type={peft_type!r} is not a peft type.{hint} "
            f"Known: {', '.join(known)}."
        )
    return PEFT_TYPE_TO_CONFIG_MAPPING[PeftType[peft_type.upper()]]


def build_peft_config(method: DictConfig):
    """The peft config for ``method``; unknown or invalid options fail here, before any weights load."""
    cls = peft_config_class(method.peft_type, method.name)
    values = options(method)
    fields = {f.name for f in dataclasses.fields(cls) if f.init} - _RESERVED
    package = cls.__module__.split(".")[0]
    owner = f"plugin config {cls.__name__}" if package == "peftbench_plugins" else f"{package}.{cls.__name__}"
    for key in values:
        if key not in fields:
            raise unknown_field_error(method, "options", key, fields, owner)
    try:
        return cls(task_type="CAUSAL_LM", **values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"method {method.name!r}: {owner} rejected method.options: {err}") from err


def validate_peft(method: DictConfig) -> None:
    config = build_peft_config(method)
    if method.get("init_vocab_limit") is not None and (
        getattr(config.peft_type, "value", config.peft_type) != "PROMPT_TUNING"
        or getattr(config.prompt_tuning_init, "value", config.prompt_tuning_init) != "SAMPLE_VOCAB"
    ):
        raise ConfigError(
            f"method {method.name!r}: method.init_vocab_limit applies to prompt tuning with "
            "prompt_tuning_init SAMPLE_VOCAB only; remove it or use method=prompt_tuning."
        )
    if method.get("init_vocab_limit") is not None and int(method.init_vocab_limit) < 1:
        raise ConfigError(f"method {method.name!r}: method.init_vocab_limit must be >= 1.")
    soft = bool(config.is_prompt_learning)
    if soft != (method.family == "soft_prompt"):
        want = "soft_prompt" if soft else "not soft_prompt (e.g. reparametrized)"
        raise ConfigError(
            f"method {method.name!r}: peft type {method.peft_type} is "
            f"{'a' if soft else 'not a'} prompt-learning method, so method.family must be {want}; "
            f"got {method.family!r} (evaluation batches soft prompts differently)."
        )


def apply_peft(model, method: DictConfig):
    from peft import get_peft_model

    config = build_peft_config(method)
    if method.quantization:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    model = get_peft_model(model, config)
    init = getattr(config, "init_lora_weights", None)
    if isinstance(init, str) and init.lower().startswith(_BASE_REWRITING_INITS):
        _save_initial_adapter(model)
    if config.peft_type == "MULTITASK_PROMPT_TUNING":
        _default_task_ids(model)
    if method.get("init_vocab_limit"):
        _init_from_first_vocab_ids(model, int(method.init_vocab_limit))
    return model


def _init_from_first_vocab_ids(model, limit: int) -> None:
    """Prompt tuning's SAMPLE_VOCAB init drawn among the first ``limit`` token ids (PEFT-Factory's: 5000)
    instead of the whole vocabulary: each virtual token starts as one of those words' embeddings."""
    import torch

    words = model.word_embeddings
    for encoder in model.prompt_encoder.values():
        weight = encoder.embedding.weight
        ids = torch.randint(
            0, min(limit, words.num_embeddings), (weight.shape[0],), device=words.weight.device
        )
        with torch.no_grad():
            weight.copy_(words(ids).to(weight.dtype))


def save_peft(model, method: DictConfig, folder: Path) -> None:
    initial = getattr(model, _INITIAL_ADAPTER, None)
    if initial is None:
        model.save_pretrained(folder)
    else:  # PiSSA/OLoRA: a rank-2r LoRA that applies to the original base weights
        model.save_pretrained(folder, path_initial_model_for_weight_conversion=initial)


def load_peft(base_model, method: DictConfig, folder: Path):
    from peft import PeftModel

    model = PeftModel.from_pretrained(base_model, folder)
    if model.peft_config["default"].peft_type == "MULTITASK_PROMPT_TUNING":
        _default_task_ids(model)
    return model


def _save_initial_adapter(model) -> None:
    """Keep the freshly initialised adapter, the reference for converting the trained one at save time."""
    folder = tempfile.mkdtemp(prefix="peftbench-initial-adapter-")
    weakref.finalize(model, shutil.rmtree, folder, True)  # removed with the model, or at exit at the latest
    config = model.peft_config["default"]
    init = config.init_lora_weights
    config.init_lora_weights = True  # as peft's recipe: the saved initial adapter must not re-run the init
    model.save_pretrained(folder)
    config.init_lora_weights = init
    setattr(model, _INITIAL_ADAPTER, folder)


def _default_task_ids(model) -> None:
    """Multitask prompt tuning needs ``task_ids``; a benchmark run is one task, id 0."""
    import torch

    def with_task_ids(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            if kwargs.get("task_ids") is None:
                ids = kwargs.get("input_ids")
                if ids is None:
                    ids = args[0] if args else kwargs.get("inputs_embeds")
                kwargs["task_ids"] = torch.zeros(ids.shape[0], dtype=torch.long, device=ids.device)
            return fn(*args, **kwargs)

        return wrapped

    model.forward = with_task_ids(model.forward)
    model.generate = with_task_ids(model.generate)


PROVIDERS.register("peft", Provider(apply=apply_peft, validate=validate_peft, save=save_peft, load=load_peft))
