"""A real single-node SLURM (scripts/local_slurm.sh): a grid through hydra-submitit-launcher, and a run
preempted with USR2 that comes back into the same folder and ends as if never interrupted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import PROJECT_DIR
from bench.run import run_experiment
from tests.conftest import TINY

pytestmark = pytest.mark.slurm
SCRIPT = PROJECT_DIR / "scripts" / "local_slurm.sh"
SLURM_DIR = Path(os.environ.get("LOCAL_SLURM_DIR", "/tmp/peftbench-slurm"))
ON_SLURM = (
    "hardware=slurm_cpu",
    "hydra.launcher.partition=debug",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2",
)


@pytest.fixture(scope="module")
def slurm():
    """Start the local cluster once (stopping it afterwards only if this session started it)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("the local SLURM cluster needs root and apt-get")
    env = {**os.environ, "LOCAL_SLURM_DIR": str(SLURM_DIR)}
    was_up = subprocess.run(["bash", str(SCRIPT), "status"], env=env, capture_output=True, text=True)
    started_here = "slurmctld: running" not in was_up.stdout
    up = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(SLURM_DIR / "etc" / "slurm.conf")
    yield env
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous
    if started_here:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)


def _bench(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=timeout,
    )


def test_grid_through_submitit_slurm(slurm, tmp_path, cache_dir):
    out = _bench(
        "--multirun",
        *ON_SLURM,
        "method=lora,ia3",
        "seed=1,2",
        *TINY,
        "trainer.max_steps=3",
        "trainer.eval_every=1.0",
        f"paths.results_dir={tmp_path}",
        f"paths.cache_dir={cache_dir}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sweep summary: success 4, skipped 0, failed 0, diverged 0, killed 0" in out.stdout + out.stderr
    records = [json.loads(p.read_text()) for p in tmp_path.glob("*/result.json")]
    assert sorted((r["method"], r["seed"]) for r in records) == [
        ("ia3", 1),
        ("ia3", 2),
        ("lora", 1),
        ("lora", 2),
    ]
    assert {r["status"] for r in records} == {"success"}


def test_preempted_run_requeues_into_the_same_folder_and_resumes(slurm, compose, tmp_path, cache_dir):
    # one thread on both sides: the job gets one CPU, and matmul results differ in the last bits with the
    # thread count, which 200 steps at lr 0.01 amplify (seen once: val loss 0.30908 vs 0.30925)
    train = (
        "trainer.max_steps=200",
        "trainer.eval_every=0.05",
        "trainer.learning_rate=0.01",
        "hardware.num_threads=1",
    )
    reference = run_experiment(compose(*TINY, *train), tmp_path / "reference")
    assert reference["status"] == "success", reference.get("traceback")

    results = tmp_path / "slurm"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench",
            "--multirun",
            *ON_SLURM,
            *TINY,
            *train,
            # workers are forked from the job: SLURM's USR2 reaches them too, and only the main process
            # may checkpoint and requeue (they inherited submitit's handler: the job failed)
            "hardware.dataloader_num_workers=2",
            f"paths.results_dir={results}",
            f"paths.cache_dir={cache_dir}",
        ],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 300
    while not list(results.glob("*/checkpoints/checkpoint-*/.complete")):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.1)
    (job_id,) = [p.name for p in (results / ".submitit").iterdir() if p.name.isdigit()]
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=30)  # preemption notice
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]

    (run_dir,) = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "success" and record["run_key"] == run_dir.name
    assert record["resumed_from"] and record["resumed_from"].startswith("checkpoint-")  # it came back
    assert record["train_steps"] == 200
    assert record["metrics"] == reference["metrics"]
    assert record["best_val_loss"] == pytest.approx(reference["best_val_loss"], abs=1e-6)
