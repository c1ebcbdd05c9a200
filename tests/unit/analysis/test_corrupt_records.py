"""One damaged result.json skips that run with a one-line message; the analysis goes on."""

from __future__ import annotations

import json

from multirun_analysis.records import load_runs


def test_a_corrupt_result_is_skipped_with_one_line(tmp_path, capsys):
    good = {"run_key": "k1", "status": "success", "model": "m", "method": "lora", "dataset": "d", "seed": 1}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "result.json").write_text(json.dumps(good))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "result.json").write_text('{"run_key": "k2", "stat')  # cut short
    runs = load_runs([tmp_path])
    assert list(runs["run_key"]) == ["k1"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"multirun_analysis: skipped {tmp_path / 'b' / 'result.json'}")
