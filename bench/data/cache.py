"""On-disk cache of tokenised data, so a relaunch does not load and tokenise the dataset again.

The key hashes everything that changes the token ids: the tokenizer (name_or_path, a hash of its vocabulary
and special tokens, its chat template), the model's prompt settings, the dataset config, the data source,
the run seed (the hold-out depends on it), the sequence length, whether training sets are built and, with
``eval.validation`` only, the validation cap (``eval.max_validation_samples``): a run without it keeps the
key it had before validation prompts existed, and its entry holds none. A template change therefore misses.
An entry without the validation prompts a run needs counts as missing (prepared again and rewritten).
Entries are written to a temporary folder and renamed into place, so a crashed or concurrent writer never
leaves a half-written entry behind.

Not in the key: the content of the source files. After replacing a mirror's files, clear
``<paths.cache_dir>/tokenized``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench.atomic import atomic_dir
from bench.data.prompts import Example

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when the prompt or encoding code changes what a key produces
_TEST_FILE = "test.json"
_COUNTS = (
    "dropped_rows",
    "truncated_rows",
)  # PreparedData's per-split row counts, kept beside the test examples


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def tokenizer_fingerprint(tokenizer) -> dict:
    """Name, vocabulary hash, special tokens and chat template of ``tokenizer``."""
    vocab = sorted(tokenizer.get_vocab().items())
    return {
        "name_or_path": str(getattr(tokenizer, "name_or_path", "")),
        "class": type(tokenizer).__name__,
        "vocab": _digest(vocab),
        "special_tokens": {k: str(v) for k, v in tokenizer.special_tokens_map.items()},
        "chat_template": getattr(tokenizer, "chat_template", None),
        "padding_side": getattr(tokenizer, "padding_side", None),
    }


def cache_key(cfg: DictConfig, tokenizer) -> str:
    """A hash of everything that decides the prepared data for ``cfg`` with ``tokenizer``."""
    model = cfg.model
    parts = {
        "version": CACHE_VERSION,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "prompt": {
            "chat_template": model.chat_template,
            "system_prompt": model.system_prompt,
            "eos_token": model.eos_token,
            "pad_token": model.pad_token,
        },
        "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
        "mirror": str(Path(cfg.data.mirror).expanduser().resolve()) if cfg.data.mirror else None,
        "seed": cfg.seed,
        "max_seq_length": cfg.trainer.max_seq_length,
        "train": cfg.method.provider != "none",
    }
    if cfg.eval.validation:  # only then: keys (and entries) of runs without it stay as they were
        parts["validation"] = {"max_validation_samples": cfg.eval.max_validation_samples}
    return _digest(parts)[:24]


def cache_root(cfg: DictConfig) -> Path:
    return Path(cfg.paths.cache_dir).expanduser() / "tokenized"


def load(path: Path, validation: bool = False):
    """The cached PreparedData at ``path``, or None where there is no complete entry.

    A damaged entry (a truncated Arrow file, bad JSON), or one without the validation prompts that
    ``validation`` (``eval.validation``) needs, is named in a warning and removed, so the data is
    prepared again and the entry rewritten instead of failing every relaunch or predicting nothing.
    """
    if not (path / _TEST_FILE).exists():
        return None
    try:
        data = _read(path)
        if validation and data.validation_examples is None:
            raise ValueError("no validation prompts (written before eval.validation existed?)")
        return data
    except Exception as err:  # noqa: BLE001 (datasets, pyarrow and json each raise their own type)
        log.warning(
            "tokenisation cache entry %s unreadable (%s: %s): removed, preparing again",
            path,
            type(err).__name__,
            err,
        )
        shutil.rmtree(path, ignore_errors=True)
        return None


def _read(path: Path):
    from datasets import Dataset

    from bench.data.pipeline import PreparedData

    test = json.loads((path / _TEST_FILE).read_text())
    splits = {
        name: Dataset.load_from_disk(str(path / name)) if (path / name).exists() else None
        for name in ("train", "val")
    }
    validation = test.get("validation")  # absent in entries of runs without eval.validation
    extra = {}
    if validation is not None:
        extra = {
            "validation_examples": _examples(validation["examples"]),
            "validation_prompts": validation["prompts"],
            "validation_prompt_ids": validation["prompt_ids"],
            "validation_available": validation["available"],
        }
    return PreparedData(
        splits["train"],
        splits["val"],
        _examples(test["examples"]),
        test["prompts"],
        test["prompt_ids"],
        **{key: test[key] for key in _COUNTS},
        **extra,
    )


def _examples(rows: list[dict]) -> list[Example]:
    return [Example(e["input"], e["target"], tuple(e["references"]), e["row_id"]) for e in rows]


def _rows(examples: list[Example]) -> list[dict]:
    return [
        {"input": e.input, "target": e.target, "references": list(e.references), "row_id": e.row_id}
        for e in examples
    ]


def save(path: Path, data) -> None:
    """Write ``data`` (PreparedData) to ``path`` atomically; an entry already there is kept."""
    with atomic_dir(path, marker=_TEST_FILE) as tmp:
        for name, split in (("train", data.train), ("val", data.val)):
            if split is not None:
                split.save_to_disk(str(tmp / name))
        test = {
            "examples": _rows(data.test_examples),
            "prompts": data.test_prompts,
            "prompt_ids": data.test_prompt_ids,
            **{key: getattr(data, key) for key in _COUNTS},
        }
        if data.validation_examples is not None:
            test["validation"] = {
                "examples": _rows(data.validation_examples),
                "prompts": data.validation_prompts,
                "prompt_ids": data.validation_prompt_ids,
                "available": data.validation_available,
            }
        (tmp / _TEST_FILE).write_text(json.dumps(test))
