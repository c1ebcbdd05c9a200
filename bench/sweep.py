"""Sweeps: skip runs that already succeeded, and a summary at the end of a multirun.

Each job appends one line (its outcome) to ``<sweep dir>/.sweeps/<sweep id>.jsonl``; the launcher
process prints the summary from that file when the multirun ends, so it works the same whether jobs
ran in-process or as SLURM jobs (the sweep id travels in the environment).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from bench.results import read_result

log = logging.getLogger("bench.sweep")

SWEEP_ID_ENV = "PEFTBENCH_SWEEP_ID"
FAILED_OUTCOMES = ("failed", "diverged")
# Jobs of the last multirun of this process that failed or diverged: ``python -m bench`` then exits 1.
failed_jobs = 0


def finished(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's record if it already succeeded (a re-launch skips it); failed runs are redone."""
    record = read_result(Path(run_dir) / "result.json")
    return record if record and record.get("status") == "success" else None


def _outcomes_file(sweep_dir: str | Path) -> Path | None:
    sweep_id = os.environ.get(SWEEP_ID_ENV)
    return Path(sweep_dir) / ".sweeps" / f"{sweep_id}.jsonl" if sweep_id else None


def record_outcome(sweep_dir: str | Path, outcome: str, record: dict[str, Any], run_dir: str | Path) -> None:
    """Append this job's outcome (success / skipped / failed / diverged) for the sweep summary."""
    path = _outcomes_file(sweep_dir)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "outcome": outcome,
        "run_key": record.get("run_key"),
        "error": record.get("error"),
        "log": str(Path(run_dir) / "bench.log"),
    }
    with open(path, "a") as f:  # one short line per job: O_APPEND keeps concurrent writers whole
        f.write(json.dumps(line) + "\n")


def summarize(lines: list[dict[str, Any]]) -> str:
    counts = Counter(line["outcome"] for line in lines)
    head = ", ".join(f"{name} {counts.get(name, 0)}" for name in ("success", "skipped", "failed", "diverged"))
    rest = [
        f"  {line['outcome']}: {line['run_key']}: {line['error']}\n    log: {line['log']}"
        for line in lines
        if line["outcome"] in FAILED_OUTCOMES
    ]
    return "\n".join([f"sweep summary: {head}", *rest])


class SweepSummary(Callback):
    """Hydra callback: tag the multirun with an id, then print what each of its jobs did."""

    def on_multirun_start(self, config, **kwargs) -> None:
        os.environ[SWEEP_ID_ENV] = uuid.uuid4().hex[:12]

    def on_multirun_end(self, config, **kwargs) -> None:
        path = _outcomes_file(config.hydra.sweep.dir)
        if path is None or not path.exists():
            return
        global failed_jobs
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        log.info("%s", summarize(lines))
        failed_jobs = sum(line["outcome"] in FAILED_OUTCOMES for line in lines)
