"""The benchmark's tables, as DataFrames: performance, stability over seeds, PSCP, failures.

Every table is a groupby over the tidy run records; formatting (bold best, underlined second, x100 with
one decimal) happens in :mod:`multirun_analysis.render`.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _grid(runs: pd.DataFrame, per_cell: pd.Series) -> pd.DataFrame:
    """``per_cell`` (indexed by model, label, dataset) as a table over every (model, variant) row and
    dataset column of ``runs``, the successful or not: a variant whose runs all failed keeps its row."""
    rows = pd.MultiIndex.from_tuples(_method_order(set(zip(runs["model"], runs["label"], strict=True))))
    cols = _ordered_columns(runs["dataset"])
    table = per_cell.unstack("dataset") if len(per_cell) else pd.DataFrame(index=rows)
    table = table.reindex(index=rows, columns=[d for _, d in cols])
    table.columns = cols
    return table


def performance_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of the headline metric, x100; rows (model, method), columns (group, dataset).

    Also a ``params`` column: the method's trainable parameters (the median over its runs).
    """
    ok = successful(runs)
    means = _grid(runs, ok.groupby([*ROWS, "dataset"])["headline_value"].mean() * 100)
    params = (
        pd.to_numeric(runs["trainable_params"], errors="coerce")
        .groupby([runs["model"], runs["label"]])
        .median()
    )
    means.insert(0, ("", "params"), params.reindex(means.index))
    return _rows(means)


def stability_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(std over seeds x100, n seeds present) per (model, method) x dataset.

    The std is the sample standard deviation (ddof=1); with one seed it is NaN, never 0. ``n`` counts
    the seeds that succeeded, so a missing seed shows as n=4 where 5 were asked for.
    """
    ok = successful(runs)
    grouped = ok.groupby([*ROWS, "dataset"])["headline_value"]
    return _rows(_grid(runs, grouped.std(ddof=1) * 100)), _rows(_grid(runs, grouped.count()))


def mean_over_datasets(per_dataset: pd.Series) -> pd.Series:
    """Per (model, variant), the mean of ``per_dataset`` (indexed by model, label, dataset) over the
    datasets of its model's rows: NaN (so never ranked) for a row that misses a dataset another row of
    its model has, as PEFT-Bench's Table 3 (:mod:`multirun_analysis.paper_tables`) leaves such rows out."""
    if per_dataset.empty:
        return pd.Series(dtype=float, index=pd.MultiIndex.from_tuples([], names=ROWS))
    out = {}
    for _model, mine in per_dataset.groupby(level="model", sort=False):
        grid = mine.unstack("dataset")
        out.update(grid.mean(axis=1, skipna=False).to_dict())
    return pd.Series(out, dtype=float).rename_axis(ROWS)


def pscp_table(runs: pd.DataFrame, constants: PSCPConfig | None = None) -> pd.DataFrame:
    """Per (model, variant): mean performance over datasets (each dataset's mean over seeds; NaN, no
    PSCP and no rank for a row missing a dataset its model's other rows have), the three penalty
    factors, PSCP, the fewest test rows and the tightest test cap (``dataset.max_eval_samples``) of its
    runs. The base model has no row (nothing trained). Memory is the mean over runs, as PEFT-Factory's
    ``cal_mem.py`` averages it; parameters and FLOPs (fixed by the method) the median.
    """
    ok = successful(runs)
    ok = ok[ok["method"] != BASE_METHOD]
    per_dataset = ok.groupby([*ROWS, "dataset"])["headline_value"].mean()
    performance = mean_over_datasets(per_dataset)
    costs = ok.groupby(ROWS)[["trainable_params", "flops_delta"]].median()
    costs["peak_memory_bytes"] = ok.groupby(ROWS)["peak_memory_bytes"].mean()
    bad = not_scored(runs)
    opts = pscp_options(constants or PSCPConfig())  # the runner's defaults unless told otherwise
    rows = []
    for key, perf in performance.items():
        c = costs.loc[key]
        mine = ok[(ok["model"] == key[0]) & (ok["label"] == key[1])]
        factors = pscp_factors(c["trainable_params"], c["flops_delta"], c["peak_memory_bytes"], **opts)
        value = (
            pscp(perf, c["trainable_params"], c["flops_delta"], c["peak_memory_bytes"], **opts)
            if np.isfinite(perf)
            else np.nan
        )
        rows.append(
            {
                "model": key[0],
                "method": key[1],
                "performance": perf * 100,
                "n_datasets": mine["dataset"].nunique(),
                "trainable_params": c["trainable_params"],
                "f_params": factors.params,
                "f_flops": factors.flops,
                "f_memory": factors.memory,
                "pscp": value * 100,
                "n_test": pd.to_numeric(mine["n_test"], errors="coerce").min(),
                "cap": pd.to_numeric(mine["cap"], errors="coerce").min(),
                "invalid_rate": pd.to_numeric(mine["invalid_rate"], errors="coerce").mean() * 100,
                "not_scored": int(((bad["model"] == key[0]) & (bad["label"] == key[1])).sum()),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.set_index(["model", "method"]).sort_values("pscp", ascending=False, kind="stable")


def failures_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that count in no mean (failed, diverged, still running, NaN headline: status ``not scored``),
    with their error and folder."""
    bad = not_scored(runs)
    cols = ["status", "model", "method", "label", "dataset", "seed", "error", "path"]
    return bad[cols].sort_values(["status", "model", "method", "dataset", "seed"]).reset_index(drop=True)


def status_counts(runs: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in runs["status"].value_counts().sort_index().items()}


def ranks(column: pd.Series) -> tuple[object, object]:
    """Index labels of the best and second-best finite values (higher is better).

    Tied values mark neither: equal best values give no best (and no second); equal second values no
    second."""
    v = column.dropna().astype(float)
    v = v[np.isfinite(v)].sort_values(ascending=False, kind="stable")
    x = v.to_numpy()
    best = v.index[0] if len(x) == 1 or (len(x) > 1 and x[0] > x[1]) else None
    second = v.index[1] if best is not None and len(x) > 1 and (len(x) == 2 or x[1] > x[2]) else None
    return best, second


# ---- uncertainty per cell, paired comparisons (see multirun_analysis.stats for the choices) ----

NOT_SCORED = "not scored"  # a successful run whose headline is NaN (e.g. Pearson of a constant answer)


def not_scored(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that count in no mean: failed, diverged, still running, or a NaN headline."""
    bad = runs[(runs["status"] != "success") | runs["headline_value"].isna()].copy()
    bad.loc[bad["status"] == "success", "status"] = NOT_SCORED
    return bad


def load_all_answers(runs: pd.DataFrame) -> dict:
    """Per run folder, its per-example headline scores (:class:`~multirun_analysis.stats.Answers`),
    computed from ``predictions.jsonl`` by the benchmark's scorer; None where the headline is not a mean
    over examples or the run has no predictions."""
    from multirun_analysis.stats import example_scorer, load_answers

    found = {}
    for r in runs.to_dict("records"):
        dataset = (r.get("config") or {}).get("dataset") if isinstance(r.get("config"), dict) else None
        convention = r.get("convention") if isinstance(r.get("convention"), str) else None
        found[r["path"]] = load_answers(
            r["path"], example_scorer(dataset, r.get("headline_metric"), convention)
        )
    return found


def _example_level(group: pd.DataFrame, answers: dict) -> list | None:
    """Per-seed score arrays when every seed's per-example scores reproduce its headline, else None."""
    arrays = []
    for r in group.itertuples():
        a = answers.get(r.path)
        if a is None or len(a.scores) == 0 or abs(a.scores.mean() - r.headline_value) > 1e-6:
            return None
        arrays.append(a.scores)
    return arrays


def cell_stats(runs: pd.DataFrame, answers: dict | None = None) -> pd.DataFrame:
    """One row per (model, variant, dataset): mean, std (ddof=1), n seeds, n test examples, the cap,
    95% CI (``ci_kind``: ``seeds`` or ``seeds+examples``), mean invalid rate, runs not scored. Scores x100.
    """
    from multirun_analysis.stats import bootstrap_ci

    answers = load_all_answers(runs) if answers is None else answers
    ok = successful(runs)
    bad = not_scored(runs)
    rows = []
    keys = sorted(set(map(tuple, runs[[*ROWS, "dataset"]].astype(str).values)))
    for model, label, dataset in keys:
        group = ok[(ok["model"] == model) & (ok["label"] == label) & (ok["dataset"] == dataset)]
        group = group.sort_values("seed")
        failed = bad[(bad["model"] == model) & (bad["label"] == label) & (bad["dataset"] == dataset)]
        values = group["headline_value"].to_numpy(float)
        examples = _example_level(group, answers) if len(group) else None
        lo, hi = bootstrap_ci(values, examples) if len(group) else (np.nan, np.nan)
        n_test = pd.to_numeric(group["n_test"], errors="coerce").dropna()
        caps = pd.to_numeric(group["cap"], errors="coerce").dropna()
        invalid = pd.to_numeric(group["invalid_rate"], errors="coerce").dropna()
        rows.append(
            {
                "model": model,
                "method": label,
                "dataset": dataset,
                "mean": values.mean() * 100 if len(values) else np.nan,
                "std": values.std(ddof=1) * 100 if len(values) > 1 else np.nan,
                "n_seeds": len(values),
                "n_test": int(n_test.max()) if len(n_test) else (len(examples[0]) if examples else np.nan),
                "cap": int(caps.max()) if len(caps) else np.nan,
                "ci_low": lo * 100,
                "ci_high": hi * 100,
                "ci_kind": "seeds+examples" if examples else "seeds" if len(values) > 1 else "",
                "invalid_rate": invalid.mean() * 100 if len(invalid) else np.nan,
                "not_scored": len(failed),
                "not_scored_status": ", ".join(sorted(set(failed["status"]))),
            }
        )
    cols = ["model", "method", "dataset"]
    return pd.DataFrame(rows).set_index(cols) if rows else pd.DataFrame(columns=cols).set_index(cols)


@dataclass(frozen=True)
class Paired:
    """A vs B on the seeds (and examples) both have: mean paired difference x100, its CI, the p-value."""

    unit: str  # "examples" (per-example headline scores) or "seeds" (headline per seed)
    n_seeds: int
    n_pairs: int
    diff: float
    ci_low: float
    ci_high: float
    p: float


def paired(a: pd.DataFrame, b: pd.DataFrame, answers: dict, what: str = "") -> Paired | None:
    """Compare two cells' successful runs (rows of :func:`successful`), matched by seed: over examples
    when both cells' per-example scores reproduce their headlines (as :func:`cell_stats` decides its CI),
    else over seeds."""
    from multirun_analysis.stats import align, bootstrap_ci, paired_bootstrap_ci, paired_permutation_p

    seeds = sorted(set(a["seed"]) & set(b["seed"]))
    if not seeds:
        return None
    ra = a.set_index("seed").loc[seeds]
    rb = b.set_index("seed").loc[seeds]
    ea = _example_level(ra.reset_index(), answers)
    eb = _example_level(rb.reset_index(), answers)
    if ea is not None and eb is not None:
        per_seed = []
        for s in seeds:
            xa, xb = align(answers[ra.loc[s, "path"]], answers[rb.loc[s, "path"]], f"{what} seed {s}")
            per_seed.append(xa - xb)
        if all(len(d) for d in per_seed):
            diffs = np.concatenate(per_seed)
            lo, hi = paired_bootstrap_ci(per_seed)
            return Paired(
                "examples",
                len(seeds),
                len(diffs),
                diffs.mean() * 100,
                lo * 100,
                hi * 100,
                paired_permutation_p(diffs),
            )
    d = (ra["headline_value"].astype(float) - rb["headline_value"].astype(float)).to_numpy()
    lo, hi = bootstrap_ci(d)
    return Paired("seeds", len(seeds), len(d), d.mean() * 100, lo * 100, hi * 100, paired_permutation_p(d))


def _cell(ok: pd.DataFrame, model: str, label: str, dataset: str) -> pd.DataFrame:
    return ok[(ok["model"] == model) & (ok["label"] == label) & (ok["dataset"] == dataset)]


@dataclass(frozen=True)
class Marks:
    """Per (model, dataset): the best row (bold only if ``significant``), the second row, the test."""

    best: object
    second: object
    significant: bool
    test: Paired | None
    p_holm: float


def best_marks(
    runs: pd.DataFrame, cells: pd.DataFrame, answers: dict | None = None
) -> dict[tuple[str, str], Marks]:
    """Per (model, dataset): best and runner-up by mean among that model's variants (methods are ranked
    within a model, never across models); the best is bold only when the paired test of best vs
    runner-up favours the best (difference > 0) at :data:`~multirun_analysis.stats.LEVEL` after Holm over
    every (model, dataset) pair tested. A tie marks neither best nor second; a tie for second marks no
    second."""
    from multirun_analysis.stats import LEVEL, holm

    answers = load_all_answers(runs) if answers is None else answers
    ok = successful(runs)
    found = {}
    means_all = cells["mean"].dropna().astype(float)
    for (model, dataset), means in means_all.groupby(level=["model", "dataset"], sort=True):
        means = means.droplevel(["dataset"]).sort_values(ascending=False, kind="stable")
        best, second = ranks(means)
        test = None
        if best is not None and len(means) >= 2:
            (m1, l1), (m2, l2) = means.index[0], means.index[1]
            test = paired(_cell(ok, m1, l1, dataset), _cell(ok, m2, l2, dataset), answers, dataset)
        found[(model, dataset)] = (best, second, test)
    tested = [k for k, (_, _, t) in found.items() if t is not None]
    adjusted = dict(zip(tested, holm([found[k][2].p for k in tested]), strict=True))
    return {
        key: Marks(
            best,
            second,
            bool(adjusted.get(key, np.nan) < LEVEL and test is not None and test.diff > 0),
            test,
            adjusted.get(key, np.nan),
        )
        for key, (best, second, test) in found.items()
    }


def compare_table(runs: pd.DataFrame, a: str, b: str, answers: dict | None = None) -> pd.DataFrame:
    """A vs B (variant labels, or method names with one variant) per (model, dataset): means over the
    common seeds, the paired difference (x100) with its 95% CI, p, Holm-adjusted p over the datasets."""
    from multirun_analysis.stats import LEVEL, holm

    answers = load_all_answers(runs) if answers is None else answers
    ok = successful(runs)
    a, b = _resolve_label(runs, a), _resolve_label(runs, b)
    rows = []
    for (model, dataset), group in ok.groupby(["model", "dataset"], sort=True):
        ca, cb = group[group["label"] == a], group[group["label"] == b]
        result = paired(ca, cb, answers, f"{a} vs {b} on {dataset}") if len(ca) and len(cb) else None
        if result is None:
            continue
        seeds = sorted(set(ca["seed"]) & set(cb["seed"]))
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "a": a,
                "b": b,
                "mean_a": ca[ca["seed"].isin(seeds)]["headline_value"].mean() * 100,
                "mean_b": cb[cb["seed"].isin(seeds)]["headline_value"].mean() * 100,
                "unit": result.unit,
                "n_seeds": result.n_seeds,
                "n_pairs": result.n_pairs,
                "diff": result.diff,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "p": result.p,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["p_holm"] = holm(table["p"])
    table["significant"] = table["p_holm"] < LEVEL
    return table


def _resolve_label(runs: pd.DataFrame, name: str) -> str:
    labels = sorted(set(runs["label"]))
    if name in labels:
        return name
    matching = sorted(set(runs.loc[runs["method"] == name, "label"]))
    if len(matching) == 1:
        return matching[0]
    import difflib

    if matching:
        raise ValueError(f"compare: {name!r} has {len(matching)} variants; name one of {matching}")
    close = difflib.get_close_matches(name, labels, n=3, cutoff=0.4)
    raise ValueError(
        f"compare: no variant {name!r}; known: {labels}" + (f" (did you mean {close}?)" if close else "")
    )
