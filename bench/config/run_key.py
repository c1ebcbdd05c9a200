"""Deterministic run identity: model, method, dataset, seed and a hash of every other setting.

The identity is a declared contract: every resolved setting is part of it except the dotted keys in
:data:`NOT_IDENTITY`, settings that say where things are, how they are shown or how fast they run, never
what is computed. Anything not listed (a new knob included) changes the key, so two runs that share a key
computed the same thing; ``hardware.device`` and ``hardware.precision`` are identity (a bf16 GPU run is
not an fp32 CPU run).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

NOT_IDENTITY: tuple[str, ...] = (
    "hydra",  # launcher, output folders (hydra.run.dir interpolates the run key itself)
    "paths",  # results_dir, cache_dir: locations
    "data.mirror",  # where the hub's parquet files are read from
    "logger",  # experiment tracking
    "rerun",  # whether a finished run is redone
    "save_adapter",  # whether the trained adapter is kept on disk
    "hardware.name",  # the preset's name; its device and precision are identity
    "hardware.num_threads",  # speed only
    "hardware.dataloader_num_workers",  # speed only: batches are built the same in any worker
    "hardware.keep_freed_memory",  # allocator behaviour (bench/allocator.py)
    "eval.batch_size",  # predictions are batch-invariant (tests/integration/test_run.py)
    "model.architecture",  # descriptive shapes for bench.plan; the weights decide them
    "method.plugins_dir",  # where a plugin's code is found
    "search",  # a search's description: its trials differ by the explicit settings they override
)

# Settings added after runs existed, left out of the identity while they hold their neutral value: a run
# that does not use them keeps its key (and a tuned run at scale 1.0 is the default run).
OMITTED_AT_DEFAULT: dict[str, Any] = {
    "trainer.learning_rate_scale": 1.0,
    "eval.validation": False,
    "eval.max_validation_samples": None,
    "eval.test": True,
}


def _drop(data: dict[str, Any], dotted: str) -> None:
    head, _, rest = dotted.partition(".")
    if not rest:
        data.pop(head, None)
    elif isinstance(data.get(head), dict):
        _drop(data[head], rest)


def identity_settings(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The resolved settings that make up the run's identity: ``cfg`` without :data:`NOT_IDENTITY`."""
    top = {key.partition(".")[0] for key in NOT_IDENTITY if "." not in key}
    data: dict[str, Any] = {}
    for key in cfg:
        if key in top:
            continue  # skipped before resolving: hydra.run.dir itself interpolates the run key
        value = cfg[key]
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        data[key] = copy.deepcopy(value)
    for dotted in NOT_IDENTITY:
        _drop(data, dotted)
    for dotted, neutral in OMITTED_AT_DEFAULT.items():
        if _get(data, dotted, neutral) == neutral:
            _drop(data, dotted)
    return data


def _get(data: dict[str, Any], dotted: str, missing: Any) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return missing
        data = data[part]
    return data


def config_hash(cfg: DictConfig | Mapping[str, Any], length: int = 8) -> str:
    """Hash of the resolved identity settings (:func:`identity_settings`)."""
    blob = json.dumps(identity_settings(cfg), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-")


def run_key(cfg: DictConfig) -> str:
    """``<model>__<method>__<dataset>__seed<seed>__<hash>``: one flat, readable folder name."""
    parts = [cfg.model.name, cfg.method.name, cfg.dataset.name, f"seed{cfg.seed}", config_hash(cfg)]
    return "__".join(_slug(p) for p in parts)


def register_resolver() -> None:
    """``${run_key:}`` in Hydra's run/sweep dirs names each run's folder by its key."""
    if not OmegaConf.has_resolver("run_key"):
        OmegaConf.register_new_resolver("run_key", lambda *, _root_: run_key(_root_))
