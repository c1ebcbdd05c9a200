"""prepare_data end to end on fixture rows (tiny-random): the tokenisation cache and multi-answer rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.data.pipeline import prepare_data
from bench.data.prompts import IGNORE_INDEX, Example, expand_references
from bench.models import load_model_and_tokenizer


@pytest.fixture
def tiny(compose, cache_dir, fixture_mirror, tmp_path):
    """``tiny(*overrides)`` -> (cfg, tokenizer) on the fixture mirror, with a fresh tokenised-data cache."""

    def _tiny(*overrides: str):
        cfg = compose("model=tiny-random", f"data.mirror={fixture_mirror}", *overrides)
        _, tok = load_model_and_tokenizer(cfg.model, cache_dir)
        cfg.paths.cache_dir = str(tmp_path / "cache")  # models stay in the session cache
        return cfg, tok

    return _tiny


def _count_tokenizer_calls(monkeypatch, tok) -> list[int]:
    calls = []
    original = type(tok).__call__

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(tok), "__call__", counting)
    return calls


def _as_tuple(data):
    def rows(ds):
        return None if ds is None else ds.to_dict()

    return rows(data.train), rows(data.val), data.test_examples, data.test_prompts, data.test_prompt_ids


def test_relaunch_reads_the_cache_and_does_not_tokenise(tiny, monkeypatch):
    cfg, tok = tiny("dataset=glue/sst2")
    first = prepare_data(cfg, tok)
    root = Path(cfg.paths.cache_dir) / "tokenized"
    assert len(list(root.glob("*/test.json"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("tokenised again despite the cache")

    monkeypatch.setattr(type(tok), "__call__", refuse)
    monkeypatch.setattr(type(tok), "apply_chat_template", refuse)
    again = prepare_data(cfg, tok)
    assert _as_tuple(again) == _as_tuple(first)
    assert not list(root.glob(".*"))  # no temporary entries left behind


def test_a_template_or_dataset_change_misses_the_cache(tiny, monkeypatch):
    cfg, tok = tiny("dataset=glue/sst2")
    prepare_data(cfg, tok)
    calls = _count_tokenizer_calls(monkeypatch, tok)
    prepare_data(cfg, tok)
    assert calls == []

    monkeypatch.setattr(tok, "chat_template", tok.chat_template.replace("assistant", "helper"))
    changed = prepare_data(cfg, tok)
    assert calls and "helper" in changed.test_prompts[0]

    calls.clear()
    cfg.dataset.instruction = "Another instruction."
    assert prepare_data(cfg, tok).test_prompts[0].count("Another instruction.") == 1 and calls

    calls.clear()
    cfg.seed = cfg.seed + 1  # the hold-out depends on the run seed
    prepare_data(cfg, tok)
    assert calls


def test_method_none_builds_no_training_set(tiny):
    cfg, tok = tiny("dataset=glue/sst2", "method=none")
    data = prepare_data(cfg, tok)
    assert data.train is None and data.val is None and len(data.test_prompt_ids) == 2


def test_record_trains_on_each_gold_and_tests_against_all(tiny):
    cfg, tok = tiny("dataset=superglue/record", "trainer.max_seq_length=256")
    data = prepare_data(cfg, tok)
    assert [e.reference for e in data.test_examples] == [["Paris", "London"], ["Berlin"]]
    # 4 passages, one held out; the train rows are one per distinct gold answer of the rest.
    answers = [tok.decode([t for t in row if t != IGNORE_INDEX]) for row in data.train["labels"]]
    val_answers = [tok.decode([t for t in row if t != IGNORE_INDEX]) for row in data.val["labels"]]
    golds = sorted(a.replace(tok.eos_token, "") for a in answers + val_answers)
    assert golds == ["Berlin", "Berlin", "London", "Paris", "Paris"]  # rows: [Paris], [London, Berlin], ...


def test_expand_references():
    rows = [Example("q1", "a", ("a", "b")), Example("q2", "c")]
    assert expand_references(rows) == [Example("q1", "a"), Example("q1", "b"), Example("q2", "c")]
    assert rows[0].reference == ["a", "b"] and rows[1].reference == "c"


def test_generation_scores_against_every_gold(compose, monkeypatch):
    from bench.data.pipeline import PreparedData
    from bench.evaluation import predict as predict_module

    cfg = compose("model=tiny-random", "dataset=superglue/record")
    examples = [Example("q1", "Paris", ("Paris", "London")), Example("q2", "Berlin", ("Berlin",))]
    data = PreparedData(None, None, examples, ["p1", "p2"], [[1], [2]])
    monkeypatch.setattr(predict_module, "generate_texts", lambda *a, **k: [" London\n", "Rome"])
    model = torch.nn.Linear(1, 1)  # stands in for the LM: generation is replaced, fp32 weights (no autocast)
    result = predict_module.predict(cfg, model=model, tokenizer=None, data=data)
    assert result.metrics["record_em"] == 0.5  # London is the second gold of row 1; Rome is wrong
    assert result.rows[0]["reference"] == ["Paris", "London"] and result.rows[0]["parsed"] == "London"


def test_dropped_rows_and_row_ids_are_recorded_and_cached(tiny, monkeypatch):
    cfg, tok = tiny("dataset=code/codealpaca_py")
    data = prepare_data(cfg, tok)
    assert data.dropped_rows == {"test": 0, "train": 1}  # the fixture's train row with an empty response
    assert data.truncated_rows == {"test": 0, "train": 0, "val": 0}  # short rows at the default 2048
    assert [e.row_id for e in data.test_examples] == ["0", "1"]
    monkeypatch.setattr(type(tok), "__call__", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    again = prepare_data(cfg, tok)
    assert again.dropped_rows == data.dropped_rows and again.test_examples == data.test_examples
    assert again.truncated_rows == data.truncated_rows


def test_rows_cut_to_max_seq_length_are_counted_per_split(tiny):
    from bench.data.prompts import build_prompt

    cfg, tok = tiny("dataset=code/apps")
    frame = build_prompt(tok, cfg.model, cfg.dataset.instruction, "")
    max_len = len(tok(frame, add_special_tokens=False)["input_ids"]) + 4  # room for 4 input/answer tokens
    cfg.trainer.max_seq_length = max_len
    data = prepare_data(cfg, tok)
    # every fixture row (2 test problems with a solution, 4 train) needs more than 4 tokens
    assert data.truncated_rows == {"test": 2, "train": 3, "val": 1}
    assert all(len(row) == max_len for row in [*data.train["input_ids"], *data.val["input_ids"]])
    assert all(len(ids) <= max_len for ids in data.test_prompt_ids)
