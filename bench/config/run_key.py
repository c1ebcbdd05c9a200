"""Deterministic run identity: model, method, dataset, seed and a hash of every other setting."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Settings that say where things are or how they are shown, not what is computed: they stay out of
# the hash so that moving the results folder or a data mirror does not re-run finished work.
_NOT_IDENTITY = ("hydra", "paths", "logger", "data", "hardware", "rerun")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-")


def config_hash(cfg: DictConfig | dict[str, Any], length: int = 8) -> str:
    """Hash of the resolved config minus the non-identity sections."""
    data = {}
    for key in cfg:
        if key in _NOT_IDENTITY:
            continue  # skipped before resolving: hydra.run.dir itself interpolates the run key
        value = cfg[key]
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        if key == "model" and isinstance(value, dict):
            value.pop("architecture", None)  # descriptive shapes for bench.plan; the weights decide them
        data[key] = value
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def run_key(cfg: DictConfig) -> str:
    """``<model>__<method>__<dataset>__seed<seed>__<hash>``: one flat, readable folder name."""
    parts = [cfg.model.name, cfg.method.name, cfg.dataset.name, f"seed{cfg.seed}", config_hash(cfg)]
    return "__".join(_slug(p) for p in parts)


def register_resolver() -> None:
    """``${run_key:}`` in Hydra's run/sweep dirs names each run's folder by its key."""
    if not OmegaConf.has_resolver("run_key"):
        OmegaConf.register_new_resolver("run_key", lambda *, _root_: run_key(_root_))
