"""From a dataset config to tokenised train/validation sets and test prompts, following the protocol.

rows -> ``dataset.preprocess`` (bench/data/preprocess.py) -> Examples -> caps and hold-out
(bench/data/splits.py) -> prompts and token ids (bench/data/prompts.py), cached on disk
(bench/data/cache.py) so a relaunch skips all of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from omegaconf import DictConfig

from bench.config.schema import LABEL_TASKS
from bench.data.loading import load_split
from bench.data.prompts import (
    Example,
    apply_prompt_style,
    encode_for_training,
    encode_prompts,
    expand_references,
    read_examples,
    training_instruction,
)
from bench.data.splits import holdout_indices, sample_indices

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    train: object | None  # datasets.Dataset of input_ids/attention_mask/labels; None for method=none
    val: object | None
    test_examples: list[Example]
    test_prompts: list[str]
    test_prompt_ids: list[list[int]]
    # rows left out per hub split ("train", "test"): no target, or dropped by dataset.preprocess
    dropped_rows: dict[str, int] = field(default_factory=dict)
    # rows cut to fit trainer.max_seq_length per split ("train", "val", "test"; bench.data.prompts._encode)
    truncated_rows: dict[str, int] = field(default_factory=dict)


@dataclass
class SplitExamples:
    """The protocol's three splits as Examples, before tokenisation."""

    train: list[Example] | None  # None when no training set is needed (method=none)
    val: list[Example] | None
    test: list[Example]
    dropped_rows: dict[str, int] = field(default_factory=dict)  # per hub split: "train", "test"


def _select(examples: list[Example], indices: list[int]) -> list[Example]:
    return [examples[i] for i in indices]


def split_examples(cfg: DictConfig, train: bool = True) -> SplitExamples:
    """Load and reshape the splits, cap them (fixed seed) and hold out validation rows (run seed).

    Caps and the hold-out count hub rows, so a multi-answer row (ReCoRD) stays on one side of the split;
    its training copies (one per gold answer) are made afterwards. ``dataset.prompt_style`` is applied
    to ``cfg.dataset`` first (in place: :func:`bench.data.prompts.apply_prompt_style`).
    """
    apply_prompt_style(cfg.dataset)
    ds, mirror = cfg.dataset, cfg.data.mirror
    stratify = ds.task_type in LABEL_TASKS
    test, dropped = read_examples(load_split(ds, ds.test_split, mirror), ds, ds.test_split)
    dropped_rows = {"test": dropped}
    labels = [e.target for e in test] if stratify else None
    test = _select(test, sample_indices(len(test), ds.max_eval_samples, ds.subset_seed, labels))
    if not train:
        return SplitExamples(None, None, test, dropped_rows)

    pool, dropped_rows["train"] = read_examples(load_split(ds, ds.train_split, mirror), ds, ds.train_split)
    labels = [e.target for e in pool] if stratify else None
    pool = _select(pool, sample_indices(len(pool), ds.max_train_samples, ds.subset_seed, labels))
    labels = [e.target for e in pool] if stratify else None
    train_idx, val_idx = holdout_indices(len(pool), ds.val_fraction, cfg.seed, labels)
    return SplitExamples(
        expand_references(_select(pool, train_idx)),
        expand_references(_select(pool, val_idx)),
        test,
        dropped_rows,
    )


def prepare_data(cfg: DictConfig, tokenizer, use_cache: bool = True) -> PreparedData:
    """Tokenised train/validation sets and test prompts for ``cfg``; from the on-disk cache when there."""
    from bench.data import cache

    apply_prompt_style(cfg.dataset)  # before the cache key: the key holds the prompt the run uses
    path = cache.cache_root(cfg) / cache.cache_key(cfg, tokenizer) if use_cache else None
    if path is not None and (hit := cache.load(path)) is not None:
        log.info("data %s: tokenised data from the cache %s", cfg.dataset.name, path)
        return hit

    ds, max_len = cfg.dataset, cfg.trainer.max_seq_length
    splits = split_examples(cfg, train=cfg.method.provider != "none")
    prompts, prompt_ids, truncated = encode_prompts(tokenizer, cfg.model, ds, splits.test, max_len)
    truncated_rows = {"test": truncated}
    train_set = val_set = None
    if splits.train is not None:
        instruction = training_instruction(ds)
        train_set, truncated_rows["train"] = encode_for_training(
            tokenizer, cfg.model, ds, splits.train, max_len, instruction
        )
        if splits.val:  # dataset.val_fraction=0: no validation split
            val_set, truncated_rows["val"] = encode_for_training(
                tokenizer, cfg.model, ds, splits.val, max_len, instruction
            )
        log.info(
            "data %s: train %d, validation %d, test %d",
            ds.name,
            len(train_set),
            len(val_set) if val_set is not None else 0,
            len(splits.test),
        )
    if any(splits.dropped_rows.values()):
        log.info("data %s: rows without a target or dropped by preprocess: %s", ds.name, splits.dropped_rows)
    if any(truncated_rows.values()):
        log.warning(
            "data %s: rows cut to trainer.max_seq_length=%d (input cut in its middle, answer at its end): %s",
            ds.name,
            max_len,
            truncated_rows,
        )
    data = PreparedData(
        train_set, val_set, splits.test, prompts, prompt_ids, splits.dropped_rows, truncated_rows
    )
    if path is not None:
        cache.save(path, data)
    return data
