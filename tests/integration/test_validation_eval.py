"""eval.validation / eval.test: a run scored on its held-out validation rows, with or without test."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from sklearn.metrics import f1_score

import bench.evaluation.predict
from bench.config.validate import validate
from bench.data import cache
from bench.data.pipeline import prepare_data, split_examples
from bench.errors import ConfigError
from bench.models import load_model_and_tokenizer
from bench.run import run_experiment
from tests.conftest import TINY

TRAIN = ("trainer.max_steps=12", "trainer.learning_rate=0.01", "trainer.eval_every=0.25")
CAP = 4  # of the 6 rows held out from 60 (dataset.val_fraction 0.1)
VALIDATION = ("eval.validation=true", f"eval.max_validation_samples={CAP}")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _row_ids(rows: list[dict]) -> list[str]:
    return [row["id"].rsplit("-", 1)[0] for row in rows]  # example_id: <row id>-<prompt hash>


@pytest.fixture(scope="module")
def runs(compose, tmp_path_factory):
    """The same training (seed 42) with the test split, and relaunched without it."""
    out = {}
    for name, extra in (("with_test", ()), ("no_test", ("eval.test=false",))):
        cfg = compose(*TINY, *TRAIN, *VALIDATION, *extra)
        run_dir = tmp_path_factory.mktemp(name)
        out[name] = (cfg, run_dir, run_experiment(cfg, run_dir))
        assert out[name][2]["status"] == "success", out[name][2].get("traceback")
    return out


def test_validation_block_scores_the_capped_held_out_rows(runs):
    cfg, run_dir, record = runs["with_test"]
    block = json.loads((run_dir / "result.json").read_text())["validation"]
    assert (block["split"], block["n"], block["n_available"], block["cap"]) == ("validation", CAP, 6, CAP)
    assert (block["mode"], block["headline_metric"]) == ("generate", "f1_macro")
    assert block["eval_runtime_s"] > 0 and record["test_evaluated"] is True
    rows = _rows(run_dir / "predictions_validation.jsonl")
    assert len(rows) == CAP
    correct = [row["parsed"] == row["reference"] for row in rows]
    assert block["metrics"]["accuracy"] == sum(correct) / CAP
    assert block["metrics"]["invalid_rate"] == sum(not row["valid"] for row in rows) / CAP
    assert block["headline_value"] == block["metrics"]["f1_macro"]

    splits = split_examples(cfg, held_out=True)
    held_out = {e.row_id for e in splits.held_out}
    assert len(held_out) == 6 and set(_row_ids(rows)) <= held_out  # the rows the validation loss uses
    assert not set(_row_ids(rows)) & {e.row_id for e in splits.train}  # never a training row
    test_ids = {row["id"] for row in _rows(run_dir / "predictions.jsonl")}
    assert len(test_ids) == 16 and not test_ids & {row["id"] for row in rows}


def test_without_the_test_split_nothing_about_test_is_recorded(runs):
    _, run_dir, record = runs["no_test"]
    on_disk = json.loads((run_dir / "result.json").read_text())
    assert on_disk["test_evaluated"] is False and not (run_dir / "predictions.jsonl").exists()
    assert (on_disk["metrics"], on_disk["metrics_paper"], on_disk["headline_value"]) == ({}, {}, None)
    assert on_disk["n_test"] == 0 and on_disk["headline_metric"] == "f1_macro"
    assert on_disk["pscp"]["value"] is None and on_disk["pscp"]["performance"] is None  # NaN: no score
    assert on_disk["best_val_loss"] is not None  # the loss objective is still there


def test_validation_is_deterministic_across_relaunches(runs):
    (_, dir_a, a), (_, dir_b, b) = runs["with_test"], runs["no_test"]
    assert _rows(dir_a / "predictions_validation.jsonl") == _rows(dir_b / "predictions_validation.jsonl")
    same = {k: v for k, v in a["validation"].items() if k != "eval_runtime_s"}
    assert same == {k: v for k, v in b["validation"].items() if k != "eval_runtime_s"}
    assert a["best_val_loss"] == b["best_val_loss"]


class Killed(BaseException):
    """Stands for SIGKILL: no ``except Exception`` sees it, so the record stays ``running``."""


def test_relaunch_after_a_kill_scores_the_saved_adapter_on_validation(runs, compose, tmp_path, monkeypatch):
    import bench.training

    _, _, reference = runs["with_test"]
    cfg = compose(*TINY, *TRAIN, *VALIDATION)
    predict = bench.evaluation.predict.predict

    def killed_at_test(*args, split="test", **kwargs):
        if split == "test":
            raise Killed
        return predict(*args, split=split, **kwargs)

    monkeypatch.setattr(bench.evaluation.predict, "predict", killed_at_test)
    with pytest.raises(Killed):
        run_experiment(cfg, tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "running"
    monkeypatch.undo()

    def no_training(*args, **kwargs):
        raise AssertionError("the relaunch trained again")

    monkeypatch.setattr(bench.training, "train", no_training)
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "success" and record["resumed_from"] == "adapter"
    without_time = lambda block: {k: v for k, v in block.items() if k != "eval_runtime_s"}  # noqa: E731
    assert without_time(record["validation"]) == without_time(reference["validation"])
    assert record["metrics"] == reference["metrics"]


def test_plain_run_records_no_validation(compose, tmp_path):
    record = run_experiment(compose(*TINY, "method=none"), tmp_path)
    assert record["validation"] is None and record["test_evaluated"] is True
    assert (tmp_path / "predictions.jsonl").exists()
    assert not (tmp_path / "predictions_validation.jsonl").exists()


def test_base_model_score_mode_on_validation(compose, tmp_path):
    """method=none trains nothing but is scored on the rows a trained run of its seed holds out."""
    cfg = compose(*TINY, "method=none", "eval.mode=score", "eval.validation=true", "eval.test=false")
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "success", record.get("traceback")
    block = record["validation"]
    assert (block["n"], block["n_available"], block["cap"], block["mode"]) == (6, 6, None, "score")
    rows = _rows(tmp_path / "predictions_validation.jsonl")
    assert all(set(row["scores"]) == set(cfg.dataset.label_names) for row in rows)
    assert [row["parsed"] for row in rows] == [max(row["scores"], key=row["scores"].get) for row in rows]
    parsed, refs = [row["parsed"] for row in rows], [row["reference"] for row in rows]
    assert block["metrics"]["accuracy"] == pytest.approx(
        sum(p == r for p, r in zip(parsed, refs, strict=True)) / 6
    )
    # every answer is a label here: F1 over the labels that occur, as sklearn computes it
    occurring = sorted(set(parsed) | set(refs))
    assert block["headline_value"] == pytest.approx(f1_score(refs, parsed, labels=occurring, average="macro"))
    held_out = {e.row_id for e in split_examples(cfg, held_out=True).held_out}
    assert set(_row_ids(rows)) == held_out


def test_generated_answers_are_scored_from_the_written_rows(compose, tmp_path, monkeypatch):
    """Label answers from a stand-in generator: the headline is the F1 of the rows written."""
    cfg = compose(*TINY, "method=none", "eval.validation=true", "eval.test=false")
    labels = list(cfg.dataset.label_names)
    answers = lambda model, tok, ids, **kw: [labels[i % 3] for i in range(len(ids))]  # noqa: E731
    monkeypatch.setattr(bench.evaluation.predict, "generate_texts", answers)
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "success", record.get("traceback")
    rows = _rows(tmp_path / "predictions_validation.jsonl")
    parsed, refs = [row["parsed"] for row in rows], [row["reference"] for row in rows]
    assert parsed == [labels[i % 3] for i in range(6)]
    occurring = sorted(set(parsed) | set(refs))
    expected = f1_score(refs, parsed, labels=occurring, average="macro")
    assert record["validation"]["headline_value"] == pytest.approx(expected)
    assert record["validation"]["metrics"]["accuracy"] == pytest.approx(
        sum(p == r for p, r in zip(parsed, refs, strict=True)) / 6
    )


def test_rescore_recomputes_the_validation_block(runs, tmp_path):
    from bench.rescore import rescore_run

    _, run_dir, record = runs["no_test"]
    shutil.copytree(run_dir, tmp_path, dirs_exist_ok=True)
    rows = _rows(tmp_path / "predictions_validation.jsonl")
    answered = [{**row, "generated": row["reference"]} for row in rows]  # every answer right now
    (tmp_path / "predictions_validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in answered))
    new = rescore_run(tmp_path)
    assert new["validation"]["metrics"] == {"accuracy": 1.0, "f1_macro": 1.0, "invalid_rate": 0.0}
    assert new["validation"]["headline_value"] == 1.0 and new["validation"]["n"] == CAP
    assert new["metrics"] == {} and new["headline_value"] is None  # no test predictions to re-score
    before = new["metrics_before_rescore"][-1]["validation"]
    assert before["headline_value"] == record["validation"]["headline_value"]


def test_a_trained_run_without_either_split_is_scored_by_its_validation_loss(compose, tmp_path):
    """search=lr_loss's trials: eval.test=false eval.validation=false trains, records best_val_loss (the
    held-out rows' loss) and predicts nothing."""
    cfg = compose(*TINY, *TRAIN, "eval.test=false", "eval.validation=false")
    validate(cfg)
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "success", record.get("traceback")
    assert record["best_val_loss"] is not None and record["best_val_loss"] > 0
    assert record["validation"] is None and record["test_evaluated"] is False and record["n_test"] == 0
    assert not list(tmp_path.glob("predictions*.jsonl"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("eval.test=false", "method=none"), "nothing would be evaluated (no validation loss either"),
        (("eval.test=false", "dataset.val_fraction=0"), "nothing would be evaluated (no validation loss"),
        (("eval.validation=true", "dataset.val_fraction=0"), "set dataset.val_fraction > 0"),
        (("eval.validation=true", "eval.max_validation_samples=0"), "must be at least 1"),
    ],
)
def test_config_errors_before_any_weights_load(compose, tmp_path, monkeypatch, overrides, message):
    cfg = compose(*TINY, *overrides)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        validate(cfg)

    def no_weights(*args, **kwargs):
        raise AssertionError("weights loaded before the config error")

    monkeypatch.setattr("bench.models.load_model_and_tokenizer", no_weights)
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "failed" and message in record["error"]


def test_cache_key_and_entries(compose, cache_dir, tmp_path, caplog):
    plain = compose(*TINY)
    _, tok = load_model_and_tokenizer(plain.model, cache_dir)
    key = cache.cache_key(plain, tok)
    # no validation: the key is the one a run had before validation prompts existed, whatever the cap
    assert cache.cache_key(compose(*TINY, "eval.max_validation_samples=3"), tok) == key
    capped, full = compose(*TINY, *VALIDATION), compose(*TINY, "eval.validation=true")
    assert len({key, cache.cache_key(capped, tok), cache.cache_key(full, tok)}) == 3

    # an entry without validation prompts (an old one, or a plain run's) is never used for a validation run
    for cfg in (plain, capped):
        cfg.paths.cache_dir = str(tmp_path)
    prepare_data(plain, tok)
    root = cache.cache_root(plain)
    shutil.copytree(root / key, root / cache.cache_key(capped, tok))
    with caplog.at_level(logging.WARNING, logger="bench.data.cache"):
        rebuilt = prepare_data(capped, tok)
    assert "no validation prompts" in caplog.text
    assert len(rebuilt.validation_examples) == CAP and rebuilt.validation_available == 6
    assert rebuilt.truncated_rows == {"test": 0, "train": 0, "val": 0, "validation": 0}
    again = prepare_data(capped, tok)  # the rewritten entry holds them
    assert again.validation_examples == rebuilt.validation_examples
    assert again.validation_prompt_ids == rebuilt.validation_prompt_ids
    assert again.validation_prompts == rebuilt.validation_prompts
    assert prepare_data(plain, tok).validation_examples is None  # and the plain entry still serves


def test_result_json_is_the_documented_schema(runs):
    """bench.record.RunRecord declares every key a real run writes, each with its meaning, and every
    declared key but the failure's traceback and rescoring's history is written."""
    from bench.record import ValidationRecord, fields_doc

    written = json.loads((runs["with_test"][1] / "result.json").read_text())
    assert set(written) == set(fields_doc()) - {"traceback", "metrics_before_rescore"}
    assert set(written["validation"]) == set(fields_doc(ValidationRecord))
    assert all(doc.strip() for doc in [*fields_doc().values(), *fields_doc(ValidationRecord).values()])
