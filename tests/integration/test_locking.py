"""Nothing collides: one process per run folder; two identical grids at once train each run once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from bench import PROJECT_DIR
from bench.lock import LOCK_FILE, holder, run_lock
from tests.conftest import TINY


def test_second_holder_waits_and_names_the_first(tmp_path, caplog):
    order = []
    with run_lock(tmp_path):
        assert holder(tmp_path).startswith(f"pid {os.getpid()} on ")

        def second():
            with run_lock(tmp_path, poll_s=0.05):
                order.append("second")

        thread = threading.Thread(target=second)
        with caplog.at_level("INFO", logger="bench.lock"):
            thread.start()
            time.sleep(0.3)
            order.append("first done")
    thread.join(5)
    assert order == ["first done", "second"]
    assert f"locked by pid {os.getpid()}" in caplog.text


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
    code = (
        "import sys, time; from bench.lock import run_lock\n"
        f"with run_lock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    assert f"pid {proc.pid} " in (tmp_path / LOCK_FILE).read_text()
    proc.kill()  # SIGKILL: the file still names it, the kernel dropped its lock
    proc.wait()
    start = time.monotonic()
    with run_lock(tmp_path, poll_s=0.05):
        assert time.monotonic() - start < 1.0
        assert holder(tmp_path).startswith(f"pid {os.getpid()} ")


def test_two_identical_grids_at_once_train_each_run_once(tmp_path, cache_dir):
    args = (
        sys.executable,
        "-m",
        "bench",
        "--multirun",
        "method=lora",
        "seed=1,2",
        *TINY,
        "trainer.max_steps=3",
        "trainer.eval_every=1.0",
        f"paths.results_dir={tmp_path}",
        f"paths.cache_dir={cache_dir}",
    )
    procs = [
        subprocess.Popen(args, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outs)
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(runs) == 2
    for run in runs:
        record = json.loads((run / "result.json").read_text())
        assert record["status"] == "success" and record["train_steps"] == 3
        log = (run / "bench.log").read_text()
        assert log.count("trained 3 steps") == 1, log  # trained by one process, skipped by the other
    text = "\n".join(outs)
    assert text.count("already succeeded, skipped") == 2
