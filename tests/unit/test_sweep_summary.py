"""The sweep summary counts a job killed from outside (it started, then reported nothing) and is printed
even when the multirun ends without Hydra's end callback (a launcher that raised on the killed job)."""

from __future__ import annotations

import json
import logging

from omegaconf import OmegaConf

from bench import sweep


def _line(outcome, key):
    return {"outcome": outcome, "run_key": key, "error": "boom" if outcome == "failed" else None, "log": key}


def test_a_started_run_without_an_outcome_is_killed():
    lines = [_line("started", "a"), _line("success", "a"), _line("started", "b"), _line("skipped", "c")]
    lines += [_line("started", "d"), _line("failed", "d")]
    text = sweep.summarize(lines)
    assert text.splitlines()[0] == "sweep summary: success 1, skipped 1, failed 1, diverged 0, killed 1"
    assert "killed: b: no outcome: killed from outside" in text and "failed: d: boom" in text


def test_the_summary_is_printed_when_the_launcher_raised(tmp_path, monkeypatch, caplog):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    monkeypatch.delenv(sweep.SWEEP_ID_ENV, raising=False)
    callback = sweep.SweepSummary()
    callback.on_multirun_start(config)
    sweep.record_outcome(tmp_path, "started", {"run_key": "a"}, tmp_path / "a")
    sweep.record_outcome(tmp_path, "success", {"run_key": "a"}, tmp_path / "a")
    sweep.record_outcome(tmp_path, "started", {"run_key": "b"}, tmp_path / "b")  # then SIGKILLed
    # the launcher raises on job b: on_multirun_end never runs; bench's main() finishes the summary
    with caplog.at_level(logging.INFO, logger="bench.sweep"):
        sweep.finish_open_summary()
    assert "sweep summary: success 1, skipped 0, failed 0, diverged 0, killed 1" in caplog.text
    assert sweep.failed_jobs == 1  # python -m bench exits 1
    caplog.clear()
    sweep.finish_open_summary()  # printed once
    assert "sweep summary" not in caplog.text
    (path,) = (tmp_path / ".sweeps").iterdir()
    assert [json.loads(x)["outcome"] for x in path.read_text().splitlines()] == [
        "started",
        "success",
        "started",
    ]
