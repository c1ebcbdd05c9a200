"""From a dataset config to tokenised train/validation sets and test prompts, following the protocol.

rows -> ``dataset.preprocess`` (bench/data/preprocess.py) -> Examples -> caps and hold-out
(bench/data/splits.py) -> prompts and token ids (bench/data/prompts.py), cached on disk
(bench/data/cache.py) so a relaunch skips all of it.

With ``eval.validation`` the held-out rows (the ones the training's validation loss uses) also get
prompts like the test rows, capped to ``eval.max_validation_samples`` with ``dataset.subset_seed``: the
split a hyperparameter search scores its trials on (bench.search), never the test split.
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


SPLITS = ("test", "validation")  # the splits a run predicts (eval.test, eval.validation)


@dataclass(frozen=True)
class EvalSplit:
    """One split to predict: its examples with their prompt texts and prompt token ids, row by row."""

    name: str  # "test" | "validation"
    examples: list[Example]
    prompts: list[str]
    prompt_ids: list[list[int]]


@dataclass
class PreparedData:
    train: object | None  # datasets.Dataset of input_ids/attention_mask/labels; None for method=none
    val: object | None
    test_examples: list[Example]
    test_prompts: list[str]
    test_prompt_ids: list[list[int]]
    # rows left out per hub split ("train", "test"): no target, or dropped by dataset.preprocess
    dropped_rows: dict[str, int] = field(default_factory=dict)
    # rows cut to fit trainer.max_seq_length per split ("train", "val", "test"; bench.data.prompts._encode;
    # "validation": the validation prompts predicted with eval.validation)
    truncated_rows: dict[str, int] = field(default_factory=dict)
    # eval.validation only (else None / 0): the held-out rows predicted, one per hub row (multi-answer
    # rows keep all their golds), capped to eval.max_validation_samples; and how many were held out
    validation_examples: list[Example] | None = None
    validation_prompts: list[str] | None = None
    validation_prompt_ids: list[list[int]] | None = None
    validation_available: int = 0

    def eval_split(self, name: str) -> EvalSplit:
        """The ``test`` or ``validation`` rows to predict."""
        if name == "test":
            return EvalSplit(name, self.test_examples, self.test_prompts, self.test_prompt_ids)
        if name == "validation":
            if self.validation_examples is None:
                raise ValueError("the validation split was not prepared: set eval.validation=true")
            return EvalSplit(
                name, self.validation_examples, self.validation_prompts, self.validation_prompt_ids
            )
        raise ValueError(f"no split {name!r} to predict; use one of {SPLITS}")


@dataclass
class SplitExamples:
    """The protocol's three splits as Examples, before tokenisation."""

    train: list[Example] | None  # None when no training set is needed (method=none)
    val: list[Example] | None
    test: list[Example]
    dropped_rows: dict[str, int] = field(default_factory=dict)  # per hub split: "train", "test"
    # the held-out hub rows behind ``val`` before multi-answer rows are expanded (None: not asked for)
    held_out: list[Example] | None = None


def _select(examples: list[Example], indices: list[int]) -> list[Example]:
    return [examples[i] for i in indices]


def split_examples(cfg: DictConfig, train: bool = True, held_out: bool = False) -> SplitExamples:
    """Load and reshape the splits, cap them (fixed seed) and hold out validation rows (run seed).

    Caps and the hold-out count hub rows, so a multi-answer row (ReCoRD) stays on one side of the split;
    its training copies (one per gold answer) are made afterwards. ``dataset.prompt_style`` is applied
    to ``cfg.dataset`` first (in place: :func:`bench.data.prompts.apply_prompt_style`). ``held_out``
    also returns the held-out hub rows (``SplitExamples.held_out``), even without ``train``: the base
    model (method=none) is scored on the rows a trained run of the same seed holds out.
    """
    apply_prompt_style(cfg.dataset)
    ds, mirror = cfg.dataset, cfg.data.mirror
    stratify = ds.task_type in LABEL_TASKS
    test, dropped = read_examples(load_split(ds, ds.test_split, mirror), ds, ds.test_split)
    dropped_rows = {"test": dropped}
    labels = [e.target for e in test] if stratify else None
    test = _select(test, sample_indices(len(test), ds.max_eval_samples, ds.subset_seed, labels))
    if not (train or held_out):
        return SplitExamples(None, None, test, dropped_rows)

    pool, dropped_rows["train"] = read_examples(load_split(ds, ds.train_split, mirror), ds, ds.train_split)
    labels = [e.target for e in pool] if stratify else None
    pool = _select(pool, sample_indices(len(pool), ds.max_train_samples, ds.subset_seed, labels))
    labels = [e.target for e in pool] if stratify else None
    train_idx, val_idx = holdout_indices(len(pool), ds.val_fraction, cfg.seed, labels)
    kept = _select(pool, val_idx)
    if not train:
        return SplitExamples(None, None, test, dropped_rows, kept)
    return SplitExamples(
        expand_references(_select(pool, train_idx)),
        expand_references(kept),
        test,
        dropped_rows,
        kept if held_out else None,
    )


def validation_sample(cfg: DictConfig, held_out: list[Example]) -> list[Example]:
    """The held-out rows predicted: ``eval.max_validation_samples`` of them (all when None), drawn with
    ``dataset.subset_seed`` (stratified by label for label tasks), so every trial of a search and every
    method sees the same rows for a given run seed."""
    ds = cfg.dataset
    labels = [e.target for e in held_out] if ds.task_type in LABEL_TASKS else None
    cap = cfg.eval.max_validation_samples
    return _select(held_out, sample_indices(len(held_out), cap, ds.subset_seed, labels))


def prepare_data(cfg: DictConfig, tokenizer, use_cache: bool = True) -> PreparedData:
    """Tokenised train/validation sets and test prompts for ``cfg``; from the on-disk cache when there."""
    from bench.data import cache

    apply_prompt_style(cfg.dataset)  # before the cache key: the key holds the prompt the run uses
    validation = bool(cfg.eval.validation)
    path = cache.cache_root(cfg) / cache.cache_key(cfg, tokenizer) if use_cache else None
    if path is not None and (hit := cache.load(path, validation)) is not None:
        log.info("data %s: tokenised data from the cache %s", cfg.dataset.name, path)
        return hit

    ds, max_len = cfg.dataset, cfg.trainer.max_seq_length
    splits = split_examples(cfg, train=cfg.method.provider != "none", held_out=validation)
    prompts, prompt_ids, truncated = encode_prompts(tokenizer, cfg.model, ds, splits.test, max_len)
    truncated_rows = {"test": truncated}
    extra = {}
    if validation:
        examples = validation_sample(cfg, splits.held_out)
        val_prompts, val_ids, truncated_rows["validation"] = encode_prompts(
            tokenizer, cfg.model, ds, examples, max_len
        )
        extra = {
            "validation_examples": examples,
            "validation_prompts": val_prompts,
            "validation_prompt_ids": val_ids,
            "validation_available": len(splits.held_out),
        }
        log.info(
            "data %s: validation rows predicted %d of %d held out",
            ds.name,
            len(examples),
            len(splits.held_out),
        )
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
        train_set, val_set, splits.test, prompts, prompt_ids, splits.dropped_rows, truncated_rows, **extra
    )
    if path is not None:
        cache.save(path, data)
    return data
