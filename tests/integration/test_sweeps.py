"""Sweeps: finished runs are skipped, failed ones redone, diverged ones stopped, crashed ones resumed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from transformers import Trainer

from bench import PROJECT_DIR
from bench.run import run_experiment
from tests.conftest import TINY

QUICK = ("trainer.max_steps=3", "trainer.eval_every=1.0")


def _bench(*args):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=PROJECT_DIR, timeout=300
    )


def _summary(out: subprocess.CompletedProcess) -> str:
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "sweep summary:" in line]
    assert lines, out.stderr[-2000:]
    return lines[-1].split("sweep summary: ")[1]


def test_relaunch_skips_finished_runs_and_redoes_failed_ones(tmp_path, cache_dir):
    common = (*TINY, *QUICK, f"paths.results_dir={tmp_path}", f"paths.cache_dir={cache_dir}")
    grid = ("method=lora,ia3", "seed=1,2")
    first = _bench("--multirun", *grid, *common)
    assert first.returncode == 0 and _summary(first) == "success 4, skipped 0, failed 0, diverged 0, killed 0"
    assert (tmp_path / first_run_dir(tmp_path) / ".hydra" / "overrides.yaml").exists()
    # Every file of the finished runs but the append-only job log (bench.log gets the "skipped" line).
    files = [p for p in tmp_path.glob("*/**/*") if p.is_file() and p.name != "bench.log"]
    stamps = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}

    # The finished 2x2 grid, relaunched with settings outside the run identity: nothing trains.
    again = _bench("--multirun", *grid, *common, "hardware.num_threads=1", "eval.batch_size=5")
    assert again.returncode == 0 and _summary(again) == "success 0, skipped 4, failed 0, diverged 0, killed 0"
    assert "trained " not in again.stdout + again.stderr
    untouched = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    assert untouched == stamps  # result.json, .hydra/config.yaml, overrides.yaml, adapter: as they were

    # A run that fails (its mirror is missing) is listed with its log; the sweep goes on.
    failing = _bench(
        "--multirun", "method=lora,none", "dataset=glue/sst2", "data.mirror=/nonexistent", *common
    )
    assert _summary(failing) == "success 0, skipped 0, failed 2, diverged 0, killed 0"
    assert failing.returncode == 1  # after the summary: the sweep did not complete
    text = failing.stdout + failing.stderr
    assert "failed: tiny-random__lora__glue-sst2" in text and "log: " in text
    mixed = _bench("--multirun", "method=lora,ia3,none", "seed=1", *common)
    assert mixed.returncode == 0 and _summary(mixed) == "success 1, skipped 2, failed 0, diverged 0, killed 0"


def first_run_dir(results):
    return next(p.name for p in sorted(results.iterdir()) if p.is_dir() and not p.name.startswith("."))


def test_failed_run_is_redone_once_its_cause_is_fixed(compose, tmp_path, shared_mirror):
    bad = run_experiment(compose(*TINY, *QUICK, "dataset=glue/sst2", "data.mirror=/nonexistent"), tmp_path)
    assert bad["status"] == "failed"
    from bench.sweep import finished

    assert finished(tmp_path) is None  # a failed run is not skipped
    good = run_experiment(
        compose(*TINY, *QUICK, "dataset=glue/sst2", f"data.mirror={shared_mirror}"), tmp_path
    )
    assert good["status"] == "success" and good["run_key"] == bad["run_key"]  # same key: mirror is a location
    assert finished(tmp_path)["run_key"] == good["run_key"]


def test_nan_loss_stops_the_run_as_diverged(compose, tmp_path):
    record = run_experiment(
        compose(*TINY, "trainer.max_steps=6", "trainer.eval_every=1.0", "trainer.learning_rate=1e30"),
        tmp_path,
    )
    assert record["status"] == "diverged" and "is nan" in record["error"]


def test_crashed_run_resumes_from_last_complete_checkpoint(compose, tmp_path, monkeypatch):
    overrides = (*TINY, "trainer.max_steps=16", "trainer.eval_every=0.25", "trainer.learning_rate=0.01")
    reference = run_experiment(compose(*overrides), tmp_path / "reference")
    assert reference["status"] == "success", reference.get("traceback")

    real_step = Trainer.training_step
    calls = {"n": 0}

    def crashing_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 11:  # after the checkpoints at steps 4 and 8
            raise RuntimeError("simulated crash")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", crashing_step)
    crashed = run_experiment(compose(*overrides), tmp_path / "run")
    assert crashed["status"] == "failed" and "simulated crash" in crashed["error"]
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-8" / ".complete").exists()
    # A half-written checkpoint (killed mid-save) must be ignored.
    (tmp_path / "run" / "checkpoints" / "checkpoint-10").mkdir()
    monkeypatch.setattr(Trainer, "training_step", real_step)

    resumed = run_experiment(compose(*overrides), tmp_path / "run")
    assert resumed["status"] == "success", resumed.get("traceback")
    assert resumed["resumed_from"] == "checkpoint-8" and resumed["train_steps"] == 16

    def evals(run):
        history = json.loads((tmp_path / run / "log_history.json").read_text())
        return [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]

    steps, losses = zip(*evals("run"), strict=True)
    ref_steps, ref_losses = zip(*evals("reference"), strict=True)
    assert steps == ref_steps == (4, 8, 12, 16)
    assert losses == pytest.approx(ref_losses, abs=1e-6)  # same losses as if it had never stopped
    assert resumed["metrics"] == reference["metrics"]
    assert resumed["best_val_loss"] == pytest.approx(reference["best_val_loss"])


def test_sigkill_then_relaunch_resumes(tmp_path, cache_dir):
    import time

    args = (
        *TINY,
        "trainer.max_steps=200",
        "trainer.eval_every=0.05",
        f"paths.results_dir={tmp_path}",
        f"paths.cache_dir={cache_dir}",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not list(tmp_path.glob("*/checkpoints/checkpoint-*/.complete")):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no finally block runs
    proc.wait()
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "result.json").read_text())["status"] == "running"

    out = _bench(*args)
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "success" and record["train_steps"] == 200
    assert record["resumed_from"].startswith("checkpoint-")


def test_grid_through_submitit_local_executor(tmp_path, cache_dir):
    """Each run in its own process, as on SLURM; the summary still sees every job."""
    out = _bench(
        "--multirun",
        "hardware=local",
        "method=lora,ia3",
        *TINY,
        *QUICK,
        f"paths.results_dir={tmp_path}",
        f"paths.cache_dir={cache_dir}",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert _summary(out) == "success 2, skipped 0, failed 0, diverged 0, killed 0"
    records = [json.loads(p.read_text()) for p in tmp_path.glob("*/result.json")]
    assert sorted(r["method"] for r in records) == ["ia3", "lora"] and {r["status"] for r in records} == {
        "success"
    }


def test_wandb_offline_run_is_named_by_the_run_key_and_finished(compose, tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    record = run_experiment(
        compose(*TINY, *QUICK, "logger=wandb", f"paths.results_dir={tmp_path}"), tmp_path / "run"
    )
    assert record["status"] == "success", record.get("traceback")
    assert wandb.run is None  # finished
    (offline,) = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert offline.name.endswith(record["run_key"])
    # Offline runs keep everything in the .wandb record log (protobuf: keys are plain strings).
    log_bytes = (offline / f"run-{record['run_key']}.wandb").read_bytes()
    for key in (b"metrics/f1_macro", b"result/status", b"eval/loss"):
        assert key in log_bytes, key  # our result record and Trainer's eval logs went into the same run
