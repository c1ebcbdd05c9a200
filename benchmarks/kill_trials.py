"""Kill -9 a tiny run at random moments, relaunch it, and compare with an uninterrupted run.

    .venv/bin/python benchmarks/kill_trials.py --trials 20 --out /tmp/kill-trials

One uninterrupted reference run, then per trial: launch the same run into a fresh results folder,
SIGKILL it after a random delay in [0, the reference's time after start-up], relaunch until
``result.json`` says success, and compare its metrics, predictions and adapter bytes with the reference.
The delay counts from the moment the run writes ``result.json`` (start-up before it is the same for every
launch), so the kills fall in model loading, training, checkpoint saves, the adapter save, prediction and
the result write. Prints one line per trial and ``k/N identical``; exits 1 unless all are identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
RUN = (
    "model=tiny-random",
    "dataset.max_train_samples=60",
    "dataset.max_eval_samples=48",
    "trainer.max_steps=48",
    "trainer.eval_every=0.125",  # a checkpoint every 6 steps
    "trainer.logging_steps=3",
    "hardware.num_threads=1",
)


def launch(results: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled"}
    args = [sys.executable, "-m", "bench", *RUN, f"paths.results_dir={results}", f"paths.cache_dir={cache}"]
    return subprocess.Popen(args, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_started(results: Path, proc: subprocess.Popen) -> float:
    """Block until the run has written its first ``result.json``; return that moment."""
    while not list(results.glob("*/result.json")):
        if proc.poll() is not None:
            raise RuntimeError(f"{results}: the run ended before it started")
        time.sleep(0.01)
    return time.monotonic()


def progress(results: Path) -> str:
    """Where the run is: checkpoints saved, adapter saved, predictions written."""
    (run,) = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")]
    done = len(list(run.glob("checkpoints/checkpoint-*/.complete")))
    if (run / "predictions.jsonl").exists():
        return "predictions written"
    if (run / "adapter" / ".complete").exists():
        return "evaluating"
    return f"training, {done} checkpoints" if done else "loading/training"


def fingerprint(results: Path) -> dict:
    (run,) = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")]
    record = json.loads((run / "result.json").read_text())
    adapter = b"".join(p.read_bytes() for p in sorted((run / "adapter").glob("*.safetensors")))
    predictions = (run / "predictions.jsonl").read_bytes()
    return {
        "status": record["status"],
        "metrics": record.get("metrics"),
        "metrics_paper": record.get("metrics_paper"),
        "train_steps": record.get("train_steps"),
        "best_val_loss": record.get("best_val_loss"),
        "adapter_sha256": hashlib.sha256(adapter).hexdigest(),
        "predictions": hashlib.sha256(predictions).hexdigest(),
        "resumed_from": record.get("resumed_from"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("/tmp/peftbench-kill-trials"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cache = args.out / "cache"

    ref = launch(args.out / "reference", cache)
    started = wait_started(args.out / "reference", ref)
    ref.wait()
    wall = time.monotonic() - started
    reference = fingerprint(args.out / "reference")
    assert reference["status"] == "success", "the reference run failed"
    print(f"reference: {wall:.1f} s, adapter {reference['adapter_sha256'][:12]}", flush=True)

    same = 0
    for trial in range(args.trials):
        results = args.out / f"trial-{trial:02d}"
        delay = rng.uniform(0, wall)
        proc = launch(results, cache)
        wait_started(results, proc)
        time.sleep(delay)
        phase = progress(results)
        killed = proc.poll() is None
        proc.kill()
        proc.wait()
        relaunches = 0
        while True:
            record = next(results.glob("*/result.json"), None)
            if record and json.loads(record.read_text()).get("status") == "success":
                break
            relaunches += 1
            assert relaunches <= 3, f"trial {trial}: no success after 3 relaunches"
            launch(results, cache).wait()
        got = fingerprint(results)
        diff = [k for k in reference if k not in ("resumed_from",) and got[k] != reference[k]]
        same += not diff
        verdict = "identical" if not diff else "DIFFERS: " + ", ".join(diff)
        when = f"{delay:5.1f} s ({phase if killed else 'already done'})"
        resumed = got["resumed_from"]
        print(f"trial {trial:2d}: killed at {when}, resumed_from={resumed}, {verdict}", flush=True)
    print(f"{same}/{args.trials} identical")
    return 0 if same == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
