"""bench.record: the documented result.json schema refuses undeclared keys and unknown statuses."""

from __future__ import annotations

import pytest

from bench.record import RecordSchemaError, conform


def test_conform_passes_declared_keys_and_names_undeclared_ones():
    record = {"status": "success", "run_key": "k", "validation": {"n": 3, "headline_value": 0.5}}
    assert conform(record) is record
    with pytest.raises(RecordSchemaError, match="headline_valu, validation.nn; declare each"):
        conform({**record, "headline_valu": 1.0, "validation": {"nn": 3}})
    with pytest.raises(RecordSchemaError, match="status 'done'"):
        conform({"status": "done"})


def test_a_run_with_an_undeclared_key_fails_naming_it(compose, tmp_path, monkeypatch):
    """The runner conforms its record before writing it: a new key nobody documented fails the run."""
    import bench.run

    real = bench.run._execute
    monkeypatch.setattr(bench.run, "_execute", lambda cfg, run_dir: {**real(cfg, run_dir), "surprise": 1})
    cfg = compose("model=tiny-random", "method=none", "dataset.max_eval_samples=4")
    record = bench.run.run_experiment(cfg, tmp_path)
    assert record["status"] == "failed" and "surprise" in record["error"]
