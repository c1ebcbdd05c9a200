"""A finished --multirun prints its results table (outcome, run key, headline metric and value) after the
summary; values at 4 significant digits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from bench import PROJECT_DIR, sweep
from tests.conftest import TINY


def _run(root, key, status, value=None, metric="f1_macro"):
    folder = root / key
    folder.mkdir()
    record = {"run_key": key, "status": status}
    if status == "success":
        record.update(headline_metric=metric, headline_value=value)
    (folder / "result.json").write_text(json.dumps(record))
    return str(folder / "bench.log")


def test_show_value():
    assert sweep.show_value(0.6871921182266009) == "0.6872"
    assert sweep.show_value(0.5) == "0.5" and sweep.show_value(0.0) == "0" and sweep.show_value(1) == "1"
    assert sweep.show_value(12345.678) == "1.235e+04" and sweep.show_value(float("nan")) == "nan"
    assert sweep.show_value(None) == "-"


def test_results_table_from_the_runs_result_files(tmp_path):
    lines = [
        {"outcome": "success", "run_key": "m__lora__d__seed2"},
        {"outcome": "failed", "run_key": "m__ia3__d__seed1"},
        {"outcome": "skipped", "run_key": "m__lora__d__seed1"},
        {"outcome": "killed", "run_key": "m__none__d__seed1", "log": str(tmp_path / "gone" / "bench.log")},
    ]
    lines[0]["log"] = _run(tmp_path, "m__lora__d__seed2", "success", 0.6871921182266009)
    lines[1]["log"] = _run(tmp_path, "m__ia3__d__seed1", "failed")
    lines[2]["log"] = _run(tmp_path, "m__lora__d__seed1", "success", 0.75, "accuracy")
    (tmp_path / "m__ia3__d__seed1" / "result.json").write_text('{"status": "succ')  # cut short: no value
    assert sweep.results_table(lines) == "\n".join(
        [
            "sweep results:",
            "  outcome  run                metric    value",
            "  failed   m__ia3__d__seed1   -         -",
            "  skipped  m__lora__d__seed1  accuracy  0.75",
            "  success  m__lora__d__seed2  f1_macro  0.6872",
            "  killed   m__none__d__seed1  -         -",
        ]
    )


def test_the_table_follows_the_summary(tmp_path, monkeypatch, capsys):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    monkeypatch.delenv(sweep.SWEEP_ID_ENV, raising=False)
    callback = sweep.SweepSummary()
    callback.on_multirun_start(config)
    sweep.record_outcome(tmp_path, "success", {"run_key": "a"}, tmp_path / "a")
    _run(tmp_path, "a", "success", 0.123456)
    callback.on_multirun_end(config)
    out = capsys.readouterr().out.splitlines()
    assert out == ["sweep results:", "  outcome  run  metric    value", "  success  a    f1_macro  0.1235"]


@pytest.mark.slow
def test_a_multirun_ends_with_its_results_table(tmp_path, cache_dir):
    common = (*TINY, "trainer.max_steps=2", "trainer.eval_every=1.0", "dataset.max_eval_samples=8")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--multirun", "method=lora,none", *common]
        + [f"paths.results_dir={tmp_path}", f"paths.cache_dir={cache_dir}"],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout[done.stdout.index("sweep results:") :].splitlines()
    assert table[1].split() == ["outcome", "run", "metric", "value"] and len(table) == 4
    records = {}
    for path in tmp_path.glob("*/result.json"):
        record = json.loads(path.read_text())
        records[record["run_key"]] = record
    for row in table[2:]:
        outcome, key, metric, value = row.split()
        assert outcome == "success" and metric == records[key]["headline_metric"] == "f1_macro"
        assert value == f"{records[key]['headline_value']:.4g}"
    assert "sweep summary: success 2," in done.stdout + done.stderr
