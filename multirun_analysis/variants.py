"""Variants: a run's identity minus its seed, so that tables never merge unlike runs.

The identity is the resolved ``config`` in ``result.json`` without what :mod:`bench.config.run_key`
keeps out of the run key (paths, mirrors, threads, ...; precision and ``hardware.device`` stay in) and
without ``seed``. Runs of one (model, method) that differ in any other setting are distinct variants;
every variant of a (model, method) is labelled with its own value of each key in which they differ
(``lora [eval.mode=generate, r=8]``, ``lora [eval.mode=score, r=16]``): unambiguous, if long. Keys
under ``dataset.`` that are fixed by the dataset (its hub id, labels) never label a variant; the same key
differing on one dataset (a cap, a prompt style) does.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from bench.config.run_key import OMITTED_AT_DEFAULT, identity_settings

# Keys that are the table's own rows and columns, or vary by construction.
_NOT_VARIANT = {"seed", "model.name", "method.name", "dataset.name"}
# method.options.r reads as r=8: options are the method's own knobs.
_SHORT_PREFIXES = ("method.options.",)
RECORD_FIELDS = ("model", "method", "dataset", "seed", "status", "method_family", "peft_type", "git_commit")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become JSON text so they compare and hash."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value, sort_keys=True, default=str)
        else:
            out[name] = value
    return out


def identity(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The flattened identity settings of a resolved config, seed excluded."""
    config = dict(config or {})
    data = identity_settings(config)  # the run key's contract: paths, mirrors, threads, ... left out
    if isinstance(data.get("model"), Mapping):
        data["model"] = {k: v for k, v in data["model"].items() if k != "architecture"}
    return {k: v for k, v in flatten(data).items() if k not in _NOT_VARIANT}


def lookup(row: Mapping[str, Any], key: str) -> Any:
    """A record field (``method``, ``git_commit``) or a dotted key of its resolved config."""
    if key in RECORD_FIELDS:
        return row.get(key)
    return flatten(row.get("config") or {}).get(key, _MISSING)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _short(key: str) -> str:
    for prefix in _SHORT_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _text(value: Any) -> str:
    return "missing" if value is _MISSING else str(value)


def _differing_keys(idents: list[dict[str, Any]]) -> set[str]:
    keys = set().union(*idents) if idents else set()
    return {k for k in keys if len({json.dumps(i.get(k, "<missing>"), default=str) for i in idents}) > 1}


def label_keys(runs: pd.DataFrame) -> dict[tuple[str, str], list[str]]:
    """Per (model, method): the keys that tell its variants apart (sorted)."""
    out = {}
    for (model, method), group in runs.groupby(["model", "method"], dropna=False, sort=False):
        idents = list(group["identity"])
        keys = {k for k in _differing_keys(idents) if not k.startswith("dataset.")}
        for _, per_dataset in group.groupby("dataset", dropna=False, sort=False):
            keys |= {k for k in _differing_keys(list(per_dataset["identity"])) if k.startswith("dataset.")}
        out[(model, method)] = sorted(keys)
    return out


def assign_variants(runs: pd.DataFrame, group_by: Iterable[str] = ()) -> pd.DataFrame:
    """Add ``identity`` (dict), ``variant`` (``r=8, eval.mode=score`` or ``""``) and ``label``
    (``lora [r=8]``). ``group_by`` keys always enter the label, so they split runs the identity merges
    (``--group-by git_commit``)."""
    runs = runs.copy()
    runs["identity"] = [identity(c) for c in runs["config"]]
    keys = label_keys(runs) if not runs.empty else {}
    group_by = list(group_by)
    variants, labels = [], []
    for row in runs.to_dict("records"):
        own = keys.get((row["model"], row["method"]), [])
        # a setting left out of the identity at its neutral value (bench.config.run_key.OMITTED_AT_DEFAULT)
        # reads as that value: lora [trainer.learning_rate_scale=1.0], not "missing"
        parts = [
            f"{_short(k)}={_text(row['identity'].get(k, OMITTED_AT_DEFAULT.get(k, _MISSING)))}" for k in own
        ]
        parts += [f"{k}={_text(lookup(row, k))}" for k in group_by if k not in own]
        variant = ", ".join(parts)
        variants.append(variant)
        labels.append(f"{row['method']} [{variant}]" if variant else str(row["method"]))
    runs["variant"] = variants
    runs["label"] = labels
    return runs


def parse_filter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--filter {text!r}: expected KEY=VALUE, e.g. method.options.r=8 or method=lora")
    return key.strip(), value.strip()


def _matches(value: Any, wanted: str) -> bool:
    if value is _MISSING:
        return False
    import yaml

    options = [w.strip() for w in wanted.split(",")]
    for option in options:
        if str(value) == option or str(value).lower() == option.lower():
            return True
        try:
            if value == yaml.safe_load(option):
                return True
        except yaml.YAMLError:
            pass
    return False


def apply_filters(runs: pd.DataFrame, filters: Iterable[str]) -> pd.DataFrame:
    """Keep the runs whose KEY equals VALUE for every ``KEY=VALUE`` (VALUE may list options: ``r=8,16``).

    A KEY no run has is an error naming close keys, before any table is computed.
    """
    records = runs.to_dict("records")
    keep = pd.Series(True, index=runs.index)
    for text in filters:
        key, wanted = parse_filter(text)
        values = [lookup(r, key) for r in records]
        if all(v is _MISSING for v in values):
            known = sorted(set(RECORD_FIELDS).union(*(flatten(r.get("config") or {}) for r in records)))
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"--filter {text!r}: no run has the key {key!r}{hint}")
        keep &= pd.Series([_matches(v, wanted) for v in values], index=runs.index)
    return runs[keep]


def check_group_by(runs: pd.DataFrame, group_by: Iterable[str]) -> None:
    records = runs.to_dict("records")
    for key in group_by:
        if all(lookup(r, key) is _MISSING for r in records):
            known = sorted(set(RECORD_FIELDS).union(*(flatten(r.get("config") or {}) for r in records)))
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"--group-by {key!r}: no run has this key{hint}")
