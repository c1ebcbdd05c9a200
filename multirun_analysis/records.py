"""Read every ``result.json`` under some folders into one tidy table (never parsing folder names)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

RUN_COLUMNS = [
    "run_key",
    "status",
    "model",
    "method",
    "method_family",
    "dataset",
    "seed",
    "trainable_params",
    "total_params",
    "flops_delta",
    "peak_memory_bytes",
    "train_runtime_s",
    "eval_runtime_s",
    "headline_metric",
    "headline_value",
    "n_test",
    "eval_mode",
    "convention",
    "git_commit",
    "error",
]


def find_results(roots: Iterable[str | Path]) -> list[Path]:
    """Every result.json under ``roots``, each file once (a folder passed twice, or nested in another).
    A folder that does not exist is named in one line on stderr and skipped."""
    files: dict[Path, Path] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            print(f"multirun_analysis: {root}: no such folder (skipped)", file=sys.stderr)
            continue
        for path in sorted(root.rglob("result.json")):
            files.setdefault(path.resolve(), path)
    return list(files.values())


def drop_duplicates(runs: pd.DataFrame, group_by: Iterable[str] = ()) -> tuple[pd.DataFrame, int]:
    """One row per ``run_key`` and ``group_by`` values (a copied folder, a re-run elsewhere: the run key
    holds no commit or device, so ``--group-by git_commit`` keeps one run per commit): a successful record
    wins, then the first path. Dropped duplicates whose headline differs from the kept one's are named in
    one line on stderr. Returns the runs and how many rows were dropped."""
    from multirun_analysis.variants import lookup

    if runs.empty:
        return runs, 0
    group_by = list(group_by)
    records = runs.to_dict("records")
    keys = [
        json.dumps([r["run_key"], *[str(lookup(r, k)) for k in group_by]]) if pd.notna(r["run_key"]) else None
        for r in records
    ]
    order = runs.assign(dedup_key=keys, _bad=runs["status"] != "success").sort_values(
        ["_bad", "path"], kind="stable"
    )
    keyed = order["dedup_key"].notna()
    first = order[keyed].drop_duplicates("dedup_key")
    kept = pd.concat([first, order[~keyed]]).drop(columns=["_bad", "dedup_key"])
    _warn_differing(order[keyed], first)
    return kept.sort_index(), len(runs) - len(kept)


def _warn_differing(keyed: pd.DataFrame, first: pd.DataFrame) -> None:
    """One stderr line when a dropped duplicate's headline differs from the record kept for its key."""
    kept_value = dict(zip(first["dedup_key"], first["headline_value"], strict=True))
    dropped = keyed.drop(first.index)
    differ = [r for r in dropped.itertuples() if not _same(r.headline_value, kept_value[r.dedup_key])]
    if differ:
        r = differ[0]
        print(
            f"multirun_analysis: {len(differ)} dropped duplicate record(s) of a run key differ in headline "
            f"from the one kept (e.g. {r.run_key}: {r.headline_value} at {r.path} dropped, "
            f"{kept_value[r.dedup_key]} kept); split them with --group-by (git_commit, hardware.device)",
            file=sys.stderr,
        )


def _same(a, b) -> bool:
    if pd.isna(a) or pd.isna(b):
        return pd.isna(a) and pd.isna(b)
    return abs(float(a) - float(b)) <= 1e-12


def load_runs(
    roots: Iterable[str | Path], filters: Iterable[str] = (), group_by: Iterable[str] = ()
) -> pd.DataFrame:
    """One row per run (duplicates of a run key and ``group_by`` values counted once), with the columns
    in ``RUN_COLUMNS`` plus ``path``, ``metrics`` (a dict), ``metrics_paper`` (a dict), ``config`` (the
    resolved config), ``invalid_rate``, ``cap`` (``dataset.max_eval_samples``), and the variant columns of
    :func:`multirun_analysis.variants.assign_variants`. ``filters`` are ``KEY=VALUE`` selections and
    ``group_by`` keys split variants (see :mod:`multirun_analysis.variants`).
    ``runs.attrs["duplicates"]`` counts the duplicate records dropped, ``runs.attrs["search_trials"]``
    the search trials left out (``test_evaluated`` false: validation only), ``runs.attrs["roots"]``
    names the folders (for their search.json files)."""
    from multirun_analysis.variants import apply_filters, assign_variants, check_group_by

    roots = list(roots)
    group_by = list(group_by)
    runs = _read_records(roots)
    runs, duplicates = drop_duplicates(runs, group_by)
    runs = apply_filters(runs, filters)
    # Search trials (validation only, no test score) are neither variants nor unscored runs: counted
    # here, shown by multirun_analysis.search_tables from the search.json beside them.
    trials = runs["test_evaluated"] == False  # noqa: E712  (a column of bools)
    runs = runs[~trials]
    check_group_by(runs, group_by)
    runs = assign_variants(runs, group_by).reset_index(drop=True)
    runs.attrs.update(duplicates=duplicates, search_trials=int(trials.sum()), roots=[str(r) for r in roots])
    return runs


def _read_records(roots: Iterable[str | Path]) -> pd.DataFrame:
    rows = []
    for path in find_results(roots):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as err:  # one damaged file (a full disk, a copy cut short) skips one run
            print(f"multirun_analysis: skipped {path}: not readable JSON ({err})", file=sys.stderr)
            continue
        if not isinstance(record, dict):
            print(f"multirun_analysis: skipped {path}: not a result record", file=sys.stderr)
            continue
        row = {col: record.get(col) for col in RUN_COLUMNS}
        row["metrics"] = record.get("metrics") or {}
        row["metrics_paper"] = record.get("metrics_paper") or {}
        row["config"] = record.get("config") or {}
        row["invalid_rate"] = row["metrics"].get("invalid_rate")
        row["cap"] = ((row["config"].get("dataset") or {}).get("max_eval_samples")) if row["config"] else None
        row["path"] = str(path.parent)
        row["test_evaluated"] = _test_evaluated(record, row["config"])
        rows.append(row)
    extra = ["metrics", "metrics_paper", "config", "invalid_rate", "cap", "path", "test_evaluated"]
    return pd.DataFrame(rows, columns=[*RUN_COLUMNS, *extra])


def _test_evaluated(record: dict, config: dict) -> bool:
    """The record's ``test_evaluated``; a record without it (a failed trial, a record older than the
    field) was scored on the test split unless its config says ``eval.test: false``."""
    if record.get("test_evaluated") is not None:
        return bool(record["test_evaluated"])
    return (config.get("eval") or {}).get("test", True) is not False


def tidy_metrics(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, metric, convention): ``peftbench`` for ``metrics``, ``paper`` for
    ``metrics_paper`` (the paper's scoring script, when the record has it)."""
    cols = ["run_key", "model", "method", "label", "variant", "dataset", "seed", "status"]
    rows = []
    for r in runs.to_dict("records"):
        for convention, field in (("peftbench", "metrics"), ("paper", "metrics_paper")):
            for name, value in (r.get(field) or {}).items():
                rows.append(
                    {**{c: r.get(c) for c in cols}, "convention": convention, "metric": name, "value": value}
                )
    return pd.DataFrame(rows, columns=[*cols, "convention", "metric", "value"])


TIDY_RUN_COLUMNS = [*RUN_COLUMNS[:3], "label", "variant", *RUN_COLUMNS[3:], "invalid_rate", "cap", "path"]


def tidy_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run, scalar columns only (``runs.csv``); every status kept."""
    return runs[[c for c in TIDY_RUN_COLUMNS if c in runs.columns]]
