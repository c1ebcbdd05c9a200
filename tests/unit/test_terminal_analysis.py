"""``python -m multirun_analysis``: a folder that does not exist, or a damaged result.json, is named in one
line on stderr and the rest is read; nothing read at all exits non-zero."""

from __future__ import annotations

import json

import pytest

from multirun_analysis.__main__ import main

RECORD = {
    "run_key": "tiny__lora__d__seed1",
    "status": "success",
    "model": "tiny",
    "method": "lora",
    "method_family": "reparametrized",
    "dataset": "d",
    "seed": 1,
    "headline_metric": "accuracy",
    "headline_value": 0.75,
    "metrics": {"accuracy": 0.75},
    "trainable_params": 10,
    "total_params": 100,
    "config": {"method": {"name": "lora", "options": {"r": 8}}, "dataset": {"name": "d"}, "seed": 1},
}


def test_a_missing_folder_and_a_corrupt_record_are_named_and_skipped(tmp_path, capsys):
    good, broken, missing = tmp_path / "good", tmp_path / "broken", tmp_path / "missing"
    (good / "run").mkdir(parents=True)
    (good / "run" / "result.json").write_text(json.dumps(RECORD))
    (broken / "run").mkdir(parents=True)
    (broken / "run" / "result.json").write_text('{"run_key": "x", "stat')  # a copy cut short
    main([str(missing), str(good), str(broken), "--out", str(tmp_path / "t"), "--no-plots"])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 2, err
    assert err[0] == f"multirun_analysis: {missing}: no such folder (skipped)"
    assert err[1].startswith(
        f"multirun_analysis: skipped {broken / 'run' / 'result.json'}: not readable JSON"
    )
    assert "runs: success 1" in captured.out  # the good folder was read


def test_nothing_read_exits_non_zero(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "missing"), "--out", str(tmp_path / "t"), "--no-plots"])
    assert stop.value.code not in (0, None)
    assert (
        capsys.readouterr().err.strip()
        == f"multirun_analysis: {tmp_path / 'missing'}: no such folder (skipped)"
    )
