"""Nothing computed is lost: a kill in evaluation or the result write, a full disk, a corrupt checkpoint."""

from __future__ import annotations

import errno
import json
import logging
import time

import pytest
from transformers import Trainer

import bench.evaluation.predict
import bench.training
from bench import run as bench_run
from bench.run import run_experiment
from tests.conftest import TINY

QUICK = (*TINY, "trainer.max_steps=4", "trainer.eval_every=0.5")


class Killed(BaseException):
    """Stands for SIGKILL: no ``except Exception`` sees it, so the record stays ``running``."""


def _no_training(*args, **kwargs):
    raise AssertionError("the relaunch trained again")


def test_kill_during_prediction_then_relaunch_evaluates_the_saved_adapter(compose, tmp_path, monkeypatch):
    cfg = compose(*QUICK)

    def killed_predict(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(bench.evaluation.predict, "predict", killed_predict)
    with pytest.raises(Killed):
        run_experiment(cfg, tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "running"
    assert (tmp_path / "adapter" / ".complete").exists() and (tmp_path / "checkpoints").exists()
    history = (tmp_path / "log_history.json").stat().st_mtime_ns

    monkeypatch.undo()
    monkeypatch.setattr(bench.training, "train", _no_training)
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "success", record.get("traceback")
    assert record["resumed_from"] == "adapter" and record["train_steps"] == 4
    assert (tmp_path / "log_history.json").stat().st_mtime_ns == history  # no new training log
    assert not (tmp_path / "checkpoints").exists()  # removed once the result is written

    monkeypatch.undo()  # the same metrics as a run that was never interrupted
    reference = run_experiment(cfg, tmp_path / "reference")
    assert record["metrics"] == reference["metrics"]
    assert record["trainable_params"] == reference["trainable_params"]
    assert record["flops_delta"] == reference["flops_delta"]


def test_full_disk_at_the_result_write_is_failed_and_the_relaunch_does_not_train(
    compose, tmp_path, monkeypatch
):
    cfg = compose(*QUICK, "save_adapter=false")
    real_write = bench_run.write_json_atomic

    def disk_full(path, data):
        if path.name == "result.json" and data.get("status") == "success":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(bench_run, "write_json_atomic", disk_full)
    record = run_experiment(cfg, tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert record["status"] == saved["status"] == "failed"
    assert "No space left on device" in saved["error"] and "result.json" in saved["error"]

    monkeypatch.setattr(bench_run, "write_json_atomic", real_write)
    monkeypatch.setattr(bench.training, "train", _no_training)
    again = run_experiment(cfg, tmp_path)
    assert again["status"] == "success" and again["resumed_from"] == "adapter", again.get("traceback")
    assert not (tmp_path / "adapter").exists()  # save_adapter=false: kept only until the result was written


def test_full_disk_at_the_predictions_write_is_failed(compose, tmp_path, monkeypatch):
    def disk_full(path, rows):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bench_run, "write_jsonl_atomic", disk_full)
    record = run_experiment(compose(*QUICK), tmp_path)
    assert record["status"] == "failed" and "No space left on device" in record["error"]
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "failed"


def test_corrupt_newest_checkpoint_falls_back_and_time_adds_up(compose, tmp_path, monkeypatch, caplog):
    """Checkpoints at steps 2, 4, 6; a crash at step 7; checkpoint-6's weights truncated.

    Every step sleeps 0.25 s: the 8 steps the result was trained with (4 before checkpoint-4, 4 after the
    resume) took at least 2.0 s, which the record must report (Trainer alone says ~1 s)."""
    overrides = (*TINY, "trainer.max_steps=8", "trainer.eval_every=2", "trainer.batch_size=4")
    real_step = Trainer.training_step
    calls = {"n": 0}

    def slow_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("simulated crash")
        time.sleep(0.25)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", slow_step)
    crashed = run_experiment(compose(*overrides), tmp_path)
    assert crashed["status"] == "failed" and "simulated crash" in crashed["error"]
    newest = tmp_path / "checkpoints" / "checkpoint-6"
    assert (newest / ".complete").exists()
    weights = next(newest.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    (tmp_path / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text()  # intact

    with caplog.at_level(logging.WARNING, logger="bench.training"):
        resumed = run_experiment(compose(*overrides), tmp_path)
    assert resumed["status"] == "success", resumed.get("traceback")
    assert resumed["resumed_from"] == "checkpoint-4" and resumed["train_steps"] == 8
    assert weights.name in caplog.text and "checkpoint-6" in caplog.text
    assert resumed["train_runtime_s"] >= 8 * 0.25
    samples = 8 * 4  # max_steps x batch size, as Trainer counts them
    assert resumed["train_samples_per_s"] == pytest.approx(samples / resumed["train_runtime_s"], rel=1e-2)
    closing = json.loads((tmp_path / "log_history.json").read_text())[-1]
    assert closing["train_runtime"] == pytest.approx(resumed["train_runtime_s"], abs=1e-2)
    assert "train_loss" not in closing  # the last segment's mean is not the run's


def test_sigkill_during_prediction_then_relaunch_does_not_train(tmp_path, cache_dir):
    """A real SIGKILL once the adapter is saved (200 test prompts one by one: seconds of prediction)."""
    import subprocess
    import sys

    from bench import PROJECT_DIR

    args = (
        "model=tiny-random",
        "dataset.max_train_samples=60",
        "dataset.max_eval_samples=200",
        "eval.batch_size=1",
        "trainer.max_steps=4",
        "trainer.eval_every=0.5",
        f"paths.results_dir={tmp_path}",
        f"paths.cache_dir={cache_dir}",
    )
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=PROJECT_DIR)
    deadline = time.time() + 240
    while not list(tmp_path.glob("*/adapter/.complete")):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "no adapter within 240 s"
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert json.loads((run_dir / "result.json").read_text())["status"] == "running"
    assert not (run_dir / "predictions.jsonl").exists()  # killed during prediction
    steps = [line for line in (run_dir / "bench.log").read_text().splitlines() if "trained 4 steps" in line]

    out = subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "success" and record["resumed_from"] == "adapter"
    assert record["train_steps"] == 4 and record["n_test"] == 200
    after = [line for line in (run_dir / "bench.log").read_text().splitlines() if "trained 4 steps" in line]
    assert len(steps) == len(after) == 1  # the relaunch logged no training
