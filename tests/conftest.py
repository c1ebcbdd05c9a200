"""Shared fixtures: offline environment, composed configs, a session cache for tiny models, the mirror."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before any HF import: tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "disabled"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.pop("PEFTBENCH_DATA_MIRROR", None)

from bench import CONF_DIR, PROJECT_DIR  # noqa: E402

SHARED_MIRROR = Path(
    os.environ.get("PEFTBENCH_SHARED_MIRROR", PROJECT_DIR.parent / "shared" / "data" / "hub")
)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One model cache per test session (tiny models build once). PEFTBENCH_TEST_CACHE reuses one."""
    env = os.environ.get("PEFTBENCH_TEST_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def compose(cache_dir):
    """``compose(*overrides)`` -> the resolved DictConfig, as ``python -m bench`` would build it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench.config.run_key import register_resolver
    from bench.config.schema import register_configs

    register_configs()
    register_resolver()

    def _compose(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose("config", overrides=[f"paths.cache_dir={cache_dir}", *overrides])

    return _compose


@pytest.fixture(scope="session")
def shared_mirror() -> Path:
    """The offline hub mirror beside the project (../shared/data/hub); skip where it is absent."""
    if not (SHARED_MIRROR / "nyu-mll" / "glue" / "sst2" / "validation.parquet").exists():
        pytest.skip(f"shared hub mirror not found at {SHARED_MIRROR} (set PEFTBENCH_SHARED_MIRROR)")
    return SHARED_MIRROR


TINY = ("model=tiny-random", "dataset.max_train_samples=60", "dataset.max_eval_samples=16")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need a CUDA device: skipped, with the reason, where torch sees none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marker gpu); run benchmarks/gpu_check.py on one")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
