"""A damaged tokenisation-cache entry is named, removed and rebuilt, not a failure on every relaunch."""

from __future__ import annotations

import logging
from pathlib import Path

from bench.data.pipeline import prepare_data
from bench.models import load_model_and_tokenizer


def test_truncated_cache_entry_is_rebuilt(compose, cache_dir, fixture_mirror, tmp_path, caplog):
    cfg = compose("model=tiny-random", f"data.mirror={fixture_mirror}", "dataset=glue/sst2")
    _, tok = load_model_and_tokenizer(cfg.model, cache_dir)
    cfg.paths.cache_dir = str(tmp_path / "cache")
    first = prepare_data(cfg, tok)
    (entry,) = (Path(cfg.paths.cache_dir) / "tokenized").glob("*/test.json")
    arrow = next((entry.parent / "train").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:64])  # truncated

    with caplog.at_level(logging.WARNING, logger="bench.data.cache"):
        again = prepare_data(cfg, tok)
    assert str(entry.parent) in caplog.text and "unreadable" in caplog.text
    assert again.train.to_dict() == first.train.to_dict() and again.test_prompts == first.test_prompts
    assert prepare_data(cfg, tok).train.to_dict() == first.train.to_dict()  # the rewritten entry reads
