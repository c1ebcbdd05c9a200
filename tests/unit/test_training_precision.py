"""Precision is per run, not per process: accelerate's state and TrainingArguments' environment variable
outlived a bf16 run, so every later run in the same process (a local --multirun, a test session) trained
under bf16 autocast whatever its own hardware.precision said."""

from __future__ import annotations

from tests.conftest import TINY


def _trainer_precision(cfg, tmp_path) -> str:
    from accelerate import Accelerator

    from bench.training import training_arguments

    training_arguments(cfg, tmp_path, n_train=16)
    return Accelerator(cpu=True).mixed_precision  # as Trainer builds it: no precision argument


def test_an_fp32_run_after_a_bf16_run_trains_in_fp32(compose, tmp_path):
    bf16 = compose(*TINY, "hardware.precision=bf16")
    fp32 = compose(*TINY)
    assert _trainer_precision(bf16, tmp_path / "a") == "bf16"
    assert _trainer_precision(fp32, tmp_path / "b") == "no"
    assert _trainer_precision(bf16, tmp_path / "c") == "bf16"
