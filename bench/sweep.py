"""Sweeps: skip runs that already succeeded, and a summary and results table at the end of a multirun.

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
FAILED_OUTCOMES = ("failed", "diverged", "killed")
STARTED = "started"  # written when a job starts its run; a run with no outcome after it was killed
# Jobs of the last multirun of this process that failed, diverged or were killed: ``python -m bench``
# then exits 1.
failed_jobs = 0
_open_sweep: str | None = None  # the sweep dir of a multirun whose summary is not printed yet


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


def outcomes(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per job: its outcome, or ``killed`` for a run that started and never reported one (a
    SLURM cancel, the OOM killer, kill -9: nothing in the job could write it)."""
    final: dict[Any, dict[str, Any]] = {}
    for line in lines:
        key = line.get("run_key") or line.get("log")
        if line["outcome"] == STARTED:
            final.setdefault(key, {**line, "outcome": "killed", "error": "no outcome: killed from outside"})
        else:
            final[key] = line
    return list(final.values())


def summarize(lines: list[dict[str, Any]]) -> str:
    lines = outcomes(lines)
    counts = Counter(line["outcome"] for line in lines)
    names = ("success", "skipped", "failed", "diverged", "killed")
    head = ", ".join(f"{name} {counts.get(name, 0)}" for name in names)
    rest = [
        f"  {line['outcome']}: {line['run_key']}: {line['error']}\n    log: {line['log']}"
        for line in lines
        if line["outcome"] in FAILED_OUTCOMES
    ]
    return "\n".join([f"sweep summary: {head}", *rest])


def show_value(value: Any) -> str:
    """A metric value at 4 significant digits (``0.6872``, not ``0.6871921182266009``); ``-`` if none."""
    if value is None:
        return "-"
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def results_table(lines: list[dict[str, Any]]) -> str:
    """The sweep's runs, one row each (sorted by run key): outcome, run key, headline metric and its value,
    read from the run's ``result.json`` (beside the job's ``bench.log``; ``-`` where there is none)."""
    rows = [("outcome", "run", "metric", "value")]
    for line in sorted(lines, key=lambda line: str(line.get("run_key"))):
        record = read_result(Path(line["log"]).parent / "result.json") if line.get("log") else None
        record = record if isinstance(record, dict) else {}
        metric = record.get("headline_metric") if record.get("status") == "success" else None
        value = record.get("headline_value") if metric else None
        rows.append((line["outcome"], str(line.get("run_key") or "-"), metric or "-", show_value(value)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "sweep results:\n" + "\n".join("  " + row for row in text)


class SweepSummary(Callback):
    """Hydra callback: tag the multirun with an id, then print what each of its jobs did."""

    def on_multirun_start(self, config, **kwargs) -> None:
        global _open_sweep
        os.environ[SWEEP_ID_ENV] = uuid.uuid4().hex[:12]
        _open_sweep = str(config.hydra.sweep.dir)

    def on_multirun_end(self, config, **kwargs) -> None:
        print_summary(config.hydra.sweep.dir)


def print_summary(sweep_dir: str | Path) -> None:
    """Log the summary of this process's multirun in ``sweep_dir``, print its results table and set
    :data:`failed_jobs`."""
    global failed_jobs, _open_sweep
    _open_sweep = None
    path = _outcomes_file(sweep_dir)
    if path is None or not path.exists():
        return
    lines = outcomes([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
    log.info("%s", summarize(lines))
    if lines:
        print(results_table(lines), flush=True)  # a table, not a log record: no prefix on its first row
    failed_jobs = sum(line["outcome"] in FAILED_OUTCOMES for line in lines)


def finish_open_summary() -> None:
    """The summary of a multirun that ended without Hydra's end callback (a launcher that raised because
    a job was killed from outside): still printed, killed jobs included."""
    if _open_sweep is not None:
        print_summary(_open_sweep)
