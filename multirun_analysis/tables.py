"""The benchmark's tables, as DataFrames: performance, stability over seeds, PSCP, failures.

Every table is a groupby over the tidy run records; formatting (bold best, underlined second, x100 with
one decimal) happens in :mod:`multirun_analysis.render`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.config.schema import PSCPConfig
from bench.metrics.pscp import pscp, pscp_factors, pscp_options

# PEFT-Bench's dataset groups, in column order; the group is the dataset name's first part.
GROUPS = {"glue": "GLUE", "superglue": "SuperGLUE", "others": "Others", "math": "Math", "code": "Code"}
BASE_METHOD = "none"
# Table rows: one per (model, variant); ``label`` is the method with its variant (``lora [r=8]``).
ROWS = ["model", "label"]


def dataset_group(dataset: str) -> str:
    prefix = dataset.split("/", 1)[0]
    return GROUPS.get(prefix, prefix.capitalize())


def _ordered_columns(datasets) -> pd.MultiIndex:
    order = list(GROUPS.values())

    def key(name):
        group = dataset_group(name)
        return (order.index(group) if group in order else len(order), group, name)

    cols = sorted(set(datasets), key=key)
    return pd.MultiIndex.from_tuples([(dataset_group(d), d) for d in cols], names=["group", "dataset"])


def successful(runs: pd.DataFrame) -> pd.DataFrame:
    ok = runs[(runs["status"] == "success") & runs["headline_value"].notna()].copy()
    ok["headline_value"] = ok["headline_value"].astype(float)
    return ok


def _method_order(index: pd.Index) -> list:
    """The base model (``none``, any variant) first, then methods alphabetically (per model)."""
    return sorted(index, key=lambda mm: (mm[0], mm[1].split(" [")[0] != BASE_METHOD, mm[1]))


def _rows(frame):
    """Name the row levels (model, method): ``method`` shows the variant label."""
    frame.index = frame.index.set_names(["model", "method"])
    return frame


def performance_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of the headline metric, x100; rows (model, method), columns (group, dataset).

    Also a ``params`` column: the method's trainable parameters (the median over its runs).
    """
    ok = successful(runs)
    means = ok.pivot_table(index=ROWS, columns="dataset", values="headline_value", aggfunc="mean")
    means = means * 100
    means.columns = pd.MultiIndex.from_tuples([(dataset_group(d), d) for d in means.columns])
    means = means.reindex(columns=_ordered_columns(ok["dataset"]))
    params = ok.groupby(ROWS)["trainable_params"].median()
    means.insert(0, ("", "params"), params)
    return _rows(means.loc[_method_order(means.index)])


def stability_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(std over seeds x100, n seeds present) per (model, method) x dataset.

    The std is the sample standard deviation (ddof=1); with one seed it is NaN, never 0. ``n`` counts
    the seeds that succeeded, so a missing seed shows as n=4 where 5 were asked for.
    """
    ok = successful(runs)
    grouped = ok.groupby([*ROWS, "dataset"])["headline_value"]
    std = (grouped.std(ddof=1) * 100).unstack("dataset")
    n = grouped.count().unstack("dataset")
    cols = _ordered_columns(ok["dataset"])
    std.columns = pd.MultiIndex.from_tuples([(dataset_group(d), d) for d in std.columns])
    n.columns = pd.MultiIndex.from_tuples([(dataset_group(d), d) for d in n.columns])
    order = _method_order(std.index)
    return _rows(std.reindex(columns=cols).loc[order]), _rows(n.reindex(columns=cols).loc[order])


def pscp_table(runs: pd.DataFrame, constants: PSCPConfig | None = None) -> pd.DataFrame:
    """Per (model, variant): mean performance over datasets (each dataset's mean over seeds), the three
    penalty factors, and PSCP. The base model has no row (nothing trained). Memory is the mean over runs,
    as PEFT-Factory's ``cal_mem.py`` averages it; parameters and FLOPs (fixed by the method) the median.
    """
    ok = successful(runs)
    ok = ok[ok["method"] != BASE_METHOD]
    per_dataset = ok.groupby([*ROWS, "dataset"])["headline_value"].mean()
    performance = per_dataset.groupby(ROWS).mean()
    costs = ok.groupby(ROWS)[["trainable_params", "flops_delta"]].median()
    costs["peak_memory_bytes"] = ok.groupby(ROWS)["peak_memory_bytes"].mean()
    opts = pscp_options(constants or PSCPConfig())  # the runner's defaults unless told otherwise
    rows = []
    for key, perf in performance.items():
        c = costs.loc[key]
        factors = pscp_factors(c["trainable_params"], c["flops_delta"], c["peak_memory_bytes"], **opts)
        rows.append(
            {
                "model": key[0],
                "method": key[1],
                "performance": perf * 100,
                "trainable_params": c["trainable_params"],
                "f_params": factors.params,
                "f_flops": factors.flops,
                "f_memory": factors.memory,
                "pscp": pscp(perf, c["trainable_params"], c["flops_delta"], c["peak_memory_bytes"], **opts)
                * 100,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.set_index(["model", "method"]).sort_values("pscp", ascending=False, kind="stable")


def failures_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that did not succeed (failed, diverged, still running), with their error and folder."""
    bad = runs[runs["status"] != "success"]
    cols = ["status", "model", "method", "label", "dataset", "seed", "error", "path"]
    return bad[cols].sort_values(["status", "model", "method", "dataset", "seed"]).reset_index(drop=True)


def status_counts(runs: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in runs["status"].value_counts().sort_index().items()}


def ranks(column: pd.Series) -> tuple[object, object]:
    """Index labels of the best and second-best finite values (higher is better)."""
    values = column.dropna().astype(float)
    values = values[np.isfinite(values)].sort_values(ascending=False, kind="stable")
    best = values.index[0] if len(values) > 0 else None
    second = values.index[1] if len(values) > 1 else None
    return best, second
