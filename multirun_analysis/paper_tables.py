"""PEFT-Bench's tables from our runs, and the deltas against the papers' published numbers.

Tables (pure functions of the runs DataFrame of :func:`multirun_analysis.records.load_runs`), each with
rows (model, method variant) in the paper's method order (Base first) and columns the paper's datasets,
in the paper's order, that the runs hold (the others are left out; a cell whose runs all failed shows
a dash), plus ``Avg.``:

- :func:`table1`: GLUE and SuperGLUE, with the trainable-parameter column (PEFT-Bench Table 1);
- :func:`table2`: Others, Math, Code (Table 2);
- :func:`table3`: PSCP with its three factors; training memory is the mean over runs, as
  PEFT-Factory's ``cal_mem.py`` averages it (Table 3);
- :func:`stability`: the std over seeds on CB, COPA, SVAMP, CoLA, WSC, SST-2 (the stability study).

Scores are x100 in one scoring convention (``paper``: PEFT-Bench's scoring script, ``peftbench``: ours;
see :func:`run_score`). ``Avg.`` is the mean over the table's shown datasets; a row missing any of them
has none (an average over other datasets would not compare).

What a number does not say follows it, with the words of the performance table
(:func:`multirun_analysis.render.cell_text`; :class:`CellMarks`): ``cap`` when ``dataset.max_eval_samples``
cut the test split, ``inv 12.5%`` the mean invalid-answer rate of the cell's scored runs (in the
convention shown), ``+1 failed`` the cell's runs that count in no mean (failed, diverged, running, no
score in the convention), and in the deltas ``n=2`` where a cell has fewer seeds than the paper averaged.
``Avg.`` (and Table 3's performance) carries the marks of its cells.

The published numbers (``reference/papers.yaml``, from ../shared/PAPERS.md, each table with its source)
are compared by :func:`deltas` with the rows that reproduce a paper preset: the paper convention, the
paper's model (``llama-3-8b-instruct`` for PEFT-Bench, ``llama-3.2-1b-instruct`` for PEFT-Factory's
Table 2), and every run of the row prompted as the paper (``dataset.prompt_style=paper``). Other rows
differ from the paper by construction, so a delta would say nothing (:func:`comparable_rows`).
"""

from __future__ import annotations

import functools
import html
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from bench.atomic import atomic_file
from bench.config.schema import METRIC_CONVENTIONS, PSCPConfig
from bench.metrics.pscp import pscp, pscp_factors, pscp_options
from multirun_analysis import render
from multirun_analysis.tables import NOT_SCORED

BASE_METHOD = "none"
# PEFT-Bench's row order (Base first); other methods follow alphabetically.
PAPER_METHODS = ("none", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning", "lora", "ln_tuning")
# The stability study's datasets, in the paper's order (PAPERS.md, "Stability study").
STABILITY_DATASETS = (
    "superglue/cb",
    "superglue/copa",
    "math/svamp",
    "glue/cola",
    "superglue/wsc",
    "glue/sst2",
)
AVG = "Avg."
PARAMS = "params"
CONVENTIONS = METRIC_CONVENTIONS  # metric.convention's options (bench/config/schema.py)
# Table 3's columns (the reference file uses the same keys) and how each is shown.
PSCP_COLUMNS = ("performance", "tflops", "memory_gb", "f_params", "f_flops", "f_mem", "pscp")
_HEADERS = {"tflops": "TFLOPs", "memory_gb": "memory GB", "pscp": "PSCP", PARAMS: "params"}
_DIGITS = {"tflops": 2, "memory_gb": 2, "f_params": 2, "f_flops": 2, "f_mem": 2, "pscp": 2}
REFERENCE_FILE = "reference/papers.yaml"
# Seeds each paper averaged, by arXiv id (PAPERS.md); a paper not listed does not state them.
PUBLISHED_SEEDS = {"2511.21285": 5}  # PEFT-Bench: 42, 123, 456, 789, 101112


# ---- reference data ----


@dataclass(frozen=True)
class Reference:
    """One published table: ``values`` has our method names as index and ``columns`` (our dataset names,
    or :data:`PSCP_COLUMNS` keys) as columns; ``headers`` maps each column to the paper's label."""

    name: str
    source: Mapping[str, str]
    model: str  # our conf/model name of the paper's model
    kind: str  # "scores" (per dataset) or "pscp"
    columns: tuple[str, ...]
    headers: Mapping[str, str]
    values: pd.DataFrame
    trainable_params: pd.Series | None = None

    def citation(self) -> str:
        s = self.source
        return f"{s['paper']}, arXiv {s['arxiv']}, {s['table']} ({s['model']})"


@functools.cache
def _reference_data(path: str | None) -> dict[str, Any]:
    import yaml

    if path is None:
        text = resources.files("multirun_analysis").joinpath(REFERENCE_FILE).read_text()
    else:
        text = Path(path).read_text()
    return yaml.safe_load(text)


def dataset_labels(path: str | None = None) -> dict[str, str]:
    """Our dataset name -> the papers' column label (``glue/sst2`` -> ``SST-2``)."""
    return {ours: paper for paper, ours in _reference_data(path)["datasets"].items()}


def load_reference(path: str | Path | None = None) -> dict[str, Reference]:
    """The published tables of ``reference/papers.yaml`` (or ``path``), by name."""
    data = _reference_data(None if path is None else str(path))
    methods, datasets = data["methods"], data["datasets"]
    out = {}
    for name, t in data["tables"].items():
        if t["kind"] == "scores":
            columns = tuple(datasets[c] for c in t["columns"])
            headers = dict(zip(columns, t["columns"], strict=True))
        else:
            columns = tuple(t["columns"])
            headers = dict(zip(columns, t["paper_headers"], strict=True))
        rows = {methods[m]: [float(v) for v in values] for m, values in t["rows"].items()}
        values = pd.DataFrame.from_dict(rows, orient="index", columns=list(columns))
        params = t.get("trainable_params")
        params = pd.Series({methods[m]: int(v) for m, v in params.items()}) if params else None
        out[name] = Reference(name, t["source"], t["model"], t["kind"], columns, headers, values, params)
    return out


# ---- scores in one convention ----

# result.json fields the runs DataFrame of records.load_runs may not carry; read from the record then.
_RECORD_FIELDS = ("paper_headline_metric", "peak_memory_device_bytes")


def with_record_fields(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with :data:`_RECORD_FIELDS` as columns (from each run's result.json where absent)."""
    missing = [f for f in _RECORD_FIELDS if f not in runs.columns]
    if not missing:
        return runs
    runs = runs.copy()
    records = [_read_record(p) for p in runs["path"]] if "path" in runs else [{}] * len(runs)
    for field in missing:
        runs[field] = [r.get(field) for r in records]
    return runs


def _read_record(folder) -> dict:
    try:
        record = json.loads((Path(folder) / "result.json").read_text())
    except (OSError, ValueError, TypeError):
        return {}
    return record if isinstance(record, dict) else {}


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def run_score(run: Mapping[str, Any], convention: str) -> tuple[str | None, float]:
    """(metric name, value as a fraction) of one run's headline in ``convention``.

    ``paper``: ``metrics_paper[paper_headline_metric]`` (the paper's scoring script); ``peftbench``:
    ``metrics[dataset.headline_metric]``. A run recorded in the same convention gives its
    ``headline_value``. NaN when the record has no score in that convention.
    """
    _check_convention(convention)
    recorded = run.get("convention") or "peftbench"  # records from before the conventions: ours
    if recorded == convention:
        return run.get("headline_metric"), _float(run.get("headline_value"))
    if convention == "paper":
        name = run.get("paper_headline_metric")
        return name, _float((run.get("metrics_paper") or {}).get(name)) if name else math.nan
    name = ((run.get("config") or {}).get("dataset") or {}).get("headline_metric")
    return name, _float((run.get("metrics") or {}).get(name)) if name else math.nan


def in_convention(runs: pd.DataFrame, convention: str) -> pd.DataFrame:
    """``runs`` with every headline (``headline_metric``, ``headline_value``, ``convention``) in
    ``convention``: what ``python -m multirun_analysis --convention`` shows in every table. A run without a
    score in that convention (a record older than ``metrics_paper``) keeps NaN, so it is counted as not
    scored rather than shown in the other convention."""
    _check_convention(convention)
    runs = with_record_fields(runs)
    picked = [run_score(r, convention) for r in runs.to_dict("records")]
    runs = runs.copy()
    runs["headline_metric"] = [name for name, _ in picked]
    runs["headline_value"] = [value for _, value in picked]
    runs["convention"] = convention
    return runs


def resolve_convention(runs: pd.DataFrame, convention: str | None = None) -> str:
    """``convention`` if given; else the one the runs were scored in (``metric.convention``); runs that
    disagree: ``paper`` when every successful run has a paper score, else ``peftbench``."""
    if convention is not None:
        _check_convention(convention)
        return convention
    ok = with_record_fields(runs[runs["status"] == "success"])
    recorded = {c or "peftbench" for c in ok["convention"]}
    if len(recorded) == 1:
        return recorded.pop()
    papers = [run_score(r, "paper")[1] for r in ok.to_dict("records")]
    return "paper" if papers and all(math.isfinite(v) for v in papers) else "peftbench"


def scores(runs: pd.DataFrame, convention: str) -> pd.DataFrame:
    """One row per successful run with a score in ``convention``: model, label, method, dataset, seed,
    metric, score (a fraction)."""
    cols = ["model", "label", "method", "dataset", "seed", "metric", "score"]
    ok = with_record_fields(runs[runs["status"] == "success"])
    rows = []
    for r in ok.to_dict("records"):
        metric, value = run_score(r, convention)
        if math.isfinite(value):
            rows.append({**{c: r[c] for c in cols[:5]}, "metric": metric, "score": value})
    return pd.DataFrame(rows, columns=cols)


# ---- what a number does not say: cap, invalid answers, runs not scored ----


@dataclass(frozen=True)
class CellMarks:
    """The runs behind one cell beyond its number, shown after it as the performance table does
    (``cap inv 12.5% +1 failed``; :func:`multirun_analysis.render.cell_text`)."""

    n_seeds: int = 0  # scored runs (each counts in the mean)
    capped: bool = False  # dataset.max_eval_samples cut the test split of a scored run
    invalid_rate: float = math.nan  # mean invalid-answer rate (%) of the scored runs that record one
    n_rated: int = 0  # how many scored runs record an invalid rate (to pool cells)
    not_scored: int = 0  # runs that count in no mean
    not_scored_status: str = ""  # their statuses: failed, diverged, running, not scored, missing

    def text(self, fewer_than: int | None = 0) -> str:
        """``n=2 cap inv 12.5% +1 failed`` (each part only when it applies; ``n=k`` when below
        ``fewer_than``, always when ``fewer_than`` is None: a paper that does not state its seeds)."""
        parts = []
        if fewer_than is None or self.n_seeds < fewer_than:
            parts.append(f"n={self.n_seeds}")
        if self.capped:
            parts.append("cap")
        if math.isfinite(self.invalid_rate) and self.invalid_rate > 0:
            parts.append(f"inv {self.invalid_rate:.1f}%")
        if self.not_scored:
            parts.append(f"+{self.not_scored} {self.not_scored_status}")
        return " ".join(parts)


def _statuses(names: Iterable[str]) -> str:
    return ", ".join(sorted(set(names)))


def invalid_rate(run: Mapping[str, Any], convention: str) -> float:
    """The run's invalid-answer rate (a fraction) in ``convention``: ``metrics_paper.invalid_rate`` for
    ``paper``, ``metrics.invalid_rate`` for ``peftbench``; NaN when the record has none."""
    field = "metrics_paper" if convention == "paper" else "metrics"
    return _float((run.get(field) or {}).get("invalid_rate"))


def _capped(run: Mapping[str, Any]) -> bool:
    """``dataset.max_eval_samples`` cut the test split: the run predicted as many rows as the cap."""
    cap = (
        run["cap"]
        if "cap" in run
        else ((run.get("config") or {}).get("dataset") or {}).get("max_eval_samples")
    )
    cap, n_test = _float(cap), _float(run.get("n_test"))
    return math.isfinite(cap) and math.isfinite(n_test) and n_test >= cap


def marks_of(runs: pd.DataFrame, convention: str | None, missing: int = 0) -> CellMarks:
    """The marks of the runs of one cell, scored in ``convention`` (None: each run's own). A run counts
    when it succeeded with a finite score; the others, and ``missing`` runs without a record, are named."""
    rated, n_seeds, capped, bad = [], 0, False, []
    if convention is not None:  # run_score reads paper_headline_metric
        runs = with_record_fields(runs)
    for run in runs.to_dict("records"):
        own = convention or run.get("convention") or "peftbench"
        score = run_score(run, own)[1] if run.get("status") == "success" else math.nan
        if not math.isfinite(score):
            bad.append(run.get("status") if run.get("status") != "success" else NOT_SCORED)
            continue
        n_seeds += 1
        capped |= _capped(run)
        rate = invalid_rate(run, own)
        if math.isfinite(rate):
            rated.append(rate)
    bad += ["missing"] * missing
    return CellMarks(
        n_seeds=n_seeds,
        capped=capped,
        invalid_rate=sum(rated) / len(rated) * 100 if rated else math.nan,
        n_rated=len(rated),
        not_scored=len(bad),
        not_scored_status=_statuses(str(b) for b in bad),
    )


def pooled(marks: Iterable[CellMarks], seeds: Callable[[Iterable[int]], int] = min) -> CellMarks:
    """The marks of several cells (a row's ``Avg.``): fewest seeds of any (``seeds=sum``: every scored
    run), capped if any is, the invalid rate over all their runs, every run not scored."""
    marks = list(marks)
    if not marks:
        return CellMarks()
    rated = sum(m.n_rated for m in marks)
    total = sum(m.invalid_rate * m.n_rated for m in marks if m.n_rated)
    statuses = [s for m in marks if m.not_scored for s in m.not_scored_status.split(", ")]
    return CellMarks(
        n_seeds=seeds(m.n_seeds for m in marks),
        capped=any(m.capped for m in marks),
        invalid_rate=total / rated if rated else math.nan,
        n_rated=rated,
        not_scored=sum(m.not_scored for m in marks),
        not_scored_status=_statuses(statuses),
    )


def cell_marks(runs: pd.DataFrame, convention: str, columns: Iterable[str]) -> dict[tuple, CellMarks]:
    """(model, label, dataset) -> :class:`CellMarks` for each dataset of ``columns`` (every status of
    ``runs`` counted), and (model, label, ``Avg.``) -> the row's cells pooled."""
    columns = list(columns)
    mine = with_record_fields(runs[runs["dataset"].isin(columns)])  # each result.json read once
    found = {key: marks_of(group, convention) for key, group in mine.groupby(["model", "label", "dataset"])}
    rows: dict[tuple, list[CellMarks]] = {}
    for (model, label, _), m in found.items():
        rows.setdefault((model, label), []).append(m)
    found.update({(model, label, AVG): pooled(ms) for (model, label), ms in rows.items()})
    return found


# ---- the tables ----


def _row_index(runs: pd.DataFrame) -> pd.MultiIndex:
    """(model, label) of ``runs``: per model, Base first, then PEFT-Bench's order, then by name."""
    pairs = set(zip(runs["model"], runs["label"], runs["method"], strict=True))

    def key(p):
        model, label, method = p
        rank = PAPER_METHODS.index(method) if method in PAPER_METHODS else len(PAPER_METHODS)
        return (str(model), rank, str(method), str(label))

    ordered = sorted(pairs, key=key)
    return pd.MultiIndex.from_tuples([(m, lab) for m, lab, _ in ordered], names=["model", "method"])


def _methods(runs: pd.DataFrame) -> dict[tuple[str, str], str]:
    return {(m, lab): meth for m, lab, meth in zip(runs["model"], runs["label"], runs["method"], strict=True)}


def _empty(convention: str) -> pd.DataFrame:
    table = pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=["model", "method"]))
    table.attrs.update(convention=convention, datasets=[], n_paper=0)
    return table


def _metrics_by_dataset(s: pd.DataFrame) -> dict[str, str]:
    return {d: "/".join(sorted({str(m) for m in g})) for d, g in s.groupby("dataset")["metric"]}


def score_table(runs: pd.DataFrame, datasets: Iterable[str], convention: str | None = None) -> pd.DataFrame:
    """Mean over seeds (x100) per (model, variant) and dataset of ``datasets`` present in ``runs``, in
    that order, plus ``Avg.`` (the mean over those columns; NaN when the row misses any).

    ``attrs``: convention, datasets (shown), n_paper (how many the paper has), seeds (fewest, most per
    cell), metrics (per dataset), methods ((model, label) -> method), marks ((model, label, column) ->
    :class:`CellMarks`, ``Avg.`` included).
    """
    return _per_cell_table(runs, datasets, convention, lambda cells: cells.mean())


def _per_cell_table(
    runs: pd.DataFrame, datasets: Iterable[str], convention: str | None, aggregate
) -> pd.DataFrame:
    """``aggregate`` of each (model, variant, dataset) cell's seed scores (x100), the datasets present in
    ``runs`` as columns, ``Avg.`` and the ``attrs`` of :func:`score_table`."""
    convention = resolve_convention(runs, convention)
    datasets = list(datasets)
    shown = [d for d in datasets if d in set(runs["dataset"])]
    if not shown:
        return _empty(convention)
    mine = runs[runs["dataset"].isin(shown)]
    s = scores(mine, convention)
    cells = s.groupby(["model", "label", "dataset"])["score"]
    table = (aggregate(cells) * 100).unstack("dataset") if len(s) else pd.DataFrame()
    table = table.reindex(index=_row_index(mine), columns=shown)
    table.columns.name = None
    table[AVG] = table[shown].mean(axis=1, skipna=False)
    counts = cells.size()
    table.attrs.update(
        convention=convention,
        datasets=shown,
        n_paper=len(datasets),
        seeds=(int(counts.min()), int(counts.max())) if len(counts) else (0, 0),
        metrics=_metrics_by_dataset(s),
        methods=_methods(mine),
        marks=cell_marks(mine, convention, shown),
    )
    return table


def _median_params(runs: pd.DataFrame, index: pd.Index) -> pd.Series:
    params = pd.to_numeric(runs["trainable_params"], errors="coerce")
    return params.groupby([runs["model"], runs["label"]]).median().reindex(index)


def table1(runs: pd.DataFrame, convention: str | None = None) -> pd.DataFrame:
    """PEFT-Bench Table 1: GLUE and SuperGLUE, with ``params`` (trainable parameters, median over runs)."""
    ref = load_reference()["peft_bench_table1"]
    table = score_table(runs, ref.columns, convention)
    if not table.empty:
        mine = runs[runs["dataset"].isin(table.attrs["datasets"])]
        table.insert(0, PARAMS, _median_params(mine, table.index))
    return table


def table2(runs: pd.DataFrame, convention: str | None = None) -> pd.DataFrame:
    """PEFT-Bench Table 2: Others, Math, Code."""
    return score_table(runs, load_reference()["peft_bench_table2"].columns, convention)


def paper_datasets() -> list[str]:
    """PEFT-Bench's 27 datasets, in the order of its Tables 1 and 2."""
    refs = load_reference()
    return [*refs["peft_bench_table1"].columns, *refs["peft_bench_table2"].columns]


def stability(runs: pd.DataFrame, convention: str | None = None) -> pd.DataFrame:
    """Std over seeds (x100, ddof=1: NaN with one seed) on the stability study's datasets, plus ``Avg.``
    (the mean of the row's stds; NaN when it misses any). ``attrs`` as :func:`score_table`."""
    return _per_cell_table(runs, STABILITY_DATASETS, convention, lambda cells: cells.std(ddof=1))


def training_memory(runs: pd.DataFrame) -> tuple[pd.Series, str]:
    """Per run, the training memory in bytes and which field gave it: device memory (NVML:
    ``peak_memory_device_bytes``, what PEFT-Factory measured) when every run has it, else the
    allocator's peak (``peak_memory_bytes``) for all, so that rows never mix the two."""
    runs = with_record_fields(runs)
    device = pd.to_numeric(runs["peak_memory_device_bytes"], errors="coerce")
    if len(runs) and device.notna().all() and (device > 0).all():
        return device, "device memory (NVML, peak_memory_device_bytes)"
    return pd.to_numeric(runs["peak_memory_bytes"], errors="coerce"), "allocator peak (peak_memory_bytes)"


def table3(
    runs: pd.DataFrame, convention: str | None = None, constants: PSCPConfig | None = None
) -> pd.DataFrame:
    """PEFT-Bench Table 3 per trained (model, variant): performance (x100, the mean over PEFT-Bench's
    datasets present of each one's mean over seeds; NaN when the row misses any), extra inference TFLOPs
    (median over runs), training memory GB (the MEAN over runs, as ``cal_mem.py``; see
    :func:`training_memory`), the factors and PSCP (x100) of :mod:`bench.metrics.pscp`."""
    convention = resolve_convention(runs, convention)
    datasets = paper_datasets()
    trained = runs[(runs["method"] != BASE_METHOD) & runs["dataset"].isin(datasets)]
    shown = [d for d in datasets if d in set(trained["dataset"])]
    if not shown:
        return _empty(convention)
    ok = with_record_fields(trained[trained["status"] == "success"])
    s = scores(ok, convention)
    per_dataset = s.groupby(["model", "label", "dataset"])["score"].mean()
    index = _row_index(trained)
    grid = per_dataset.unstack("dataset") if len(s) else pd.DataFrame()
    performance = grid.reindex(index=index, columns=shown).mean(axis=1, skipna=False)
    memory, source = training_memory(ok)
    by_row = [ok["model"], ok["label"]]
    memory = memory.groupby(by_row).mean().reindex(index)
    params = pd.to_numeric(ok["trainable_params"], errors="coerce").groupby(by_row).median().reindex(index)
    flops = pd.to_numeric(ok["flops_delta"], errors="coerce").groupby(by_row).median().reindex(index)
    opts = pscp_options(constants or PSCPConfig())
    rows = []
    for key in index:
        perf, p, f, m = performance[key], params[key], flops[key], memory[key]
        if any(pd.isna(v) for v in (p, f, m)):
            rows.append({"performance": perf * 100, "tflops": f / 1e12, "memory_gb": m / 1e9})
            continue
        factors = pscp_factors(p, f, m, **opts)
        rows.append(
            {
                "performance": perf * 100,
                "tflops": f / 1e12,
                "memory_gb": m / 1e9,
                "f_params": factors.params,
                "f_flops": factors.flops,
                "f_mem": factors.memory,
                "pscp": pscp(perf, p, f, m, **opts) * 100,
            }
        )
    table = pd.DataFrame(rows, index=index, columns=list(PSCP_COLUMNS)).astype(float)
    counts = s.groupby(["model", "label", "dataset"]).size()
    table.attrs.update(
        convention=convention,
        datasets=shown,
        n_paper=len(datasets),
        seeds=(int(counts.min()), int(counts.max())) if len(counts) else (0, 0),
        memory=source,
        constants=opts,
        methods=_methods(trained),
        marks={
            (model, label, "performance"): m
            for (model, label, column), m in cell_marks(trained, convention, shown).items()
            if column == AVG
        },
    )
    return table


# ---- deltas against the published numbers ----


def comparable_rows(runs: pd.DataFrame, reference: Reference, convention: str) -> list[tuple[str, str]]:
    """The (model, label) rows that reproduce ``reference``'s setting: the paper convention, the paper's
    model, a method the paper reports, and every run prompted as the paper (``prompt_style=paper``)."""
    if convention != "paper":
        return []
    mine = runs[(runs["model"] == reference.model) & runs["method"].isin(reference.values.index)]
    rows = []
    for (model, label), group in mine.groupby(["model", "label"], sort=False):
        styles = {((c or {}).get("dataset") or {}).get("prompt_style") for c in group["config"]}
        if styles == {"paper"}:
            rows.append((model, label))
    return rows


DELTA_COLUMNS = ["model", "method", "column", "ours", "published", "delta"]
# Per compared cell, what the number does not say (CellMarks' fields; empty for params).
MARK_COLUMNS = ["n_seeds", "capped", "invalid_rate", "not_scored", "not_scored_status"]


def deltas(table: pd.DataFrame, reference: Reference) -> pd.DataFrame:
    """Ours minus published, one row per (model, variant, column) of ``table`` that ``reference`` has
    (rows of the reference's model only); ``Avg.`` against the mean of the published cells of the same
    columns, ``params`` against the published trainable parameters. Columns: :data:`DELTA_COLUMNS`, then
    :data:`MARK_COLUMNS` (the cell's :class:`CellMarks`: seeds, cap, invalid rate, runs not scored)."""
    methods, marks = table.attrs.get("methods", {}), table.attrs.get("marks", {})
    columns = [c for c in reference.columns if c in table.columns]
    rows = []
    for key in table.index:
        model, label = key
        method = methods.get(key, str(label).split(" [", 1)[0])
        if model != reference.model or method not in reference.values.index:
            continue
        published = reference.values.loc[method]
        pairs = []
        if PARAMS in table.columns and reference.trainable_params is not None:
            if method in reference.trainable_params.index:
                pairs.append((PARAMS, table.at[key, PARAMS], reference.trainable_params[method]))
        pairs += [(c, table.at[key, c], published[c]) for c in columns]
        shown = [c for c in table.attrs.get("datasets", []) if c in table.columns]
        if AVG in table.columns and shown and set(shown) <= set(columns):
            pairs.append((AVG, table.at[key, AVG], published[shown].mean()))
        for column, ours, pub in pairs:
            ours = _float(ours)
            m = marks.get((model, label, column))
            rows.append(
                {
                    "model": model,
                    "method": label,
                    "column": column,
                    "ours": ours,
                    "published": float(pub),
                    "delta": ours - float(pub),
                    **{c: (getattr(m, c) if m is not None else None) for c in MARK_COLUMNS},
                }
            )
    return pd.DataFrame(rows, columns=[*DELTA_COLUMNS, *MARK_COLUMNS])


# ---- rendering ----


def _digits(column: str) -> int:
    return _DIGITS.get(column, 1)


def _number(value, column: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return render.DASH
    if column == PARAMS:
        return f"{int(round(float(value))):,}"
    return f"{float(value):.{_digits(column)}f}"


def _header(column: str, labels: Mapping[str, str]) -> str:
    return labels.get(column) or _HEADERS.get(column) or column


def display_frame(table: pd.DataFrame, fmt: str = "markdown") -> pd.DataFrame:
    """Display strings of a paper table: model, method, then each column (the paper's dataset labels)."""
    esc, labels = render.ESCAPE[fmt], dataset_labels()
    out = pd.DataFrame(
        {"model": [esc(m) for m, _ in table.index], "method": [esc(v) for _, v in table.index]}
    )
    marks = table.attrs.get("marks", {})
    for column in table.columns:
        shown = []
        for (model, label), value in zip(table.index, table[column], strict=True):
            m = marks.get((model, label, column))
            shown.append(esc(" ".join(filter(None, (_number(value, column), m and m.text())))))
        out[esc(_header(column, labels))] = shown
    return out


def published_seeds(reference: Reference) -> int | None:
    """How many seeds the paper of ``reference`` averaged (None: not stated)."""
    return PUBLISHED_SEEDS.get(str(reference.source.get("arxiv")))


def _row_marks(r) -> CellMarks | None:
    if r.n_seeds is None or (isinstance(r.n_seeds, float) and math.isnan(r.n_seeds)):
        return None
    return CellMarks(
        n_seeds=int(r.n_seeds),
        capped=bool(r.capped),
        invalid_rate=_float(r.invalid_rate),
        not_scored=int(r.not_scored),
        not_scored_status=str(r.not_scored_status or ""),
    )


def deltas_frame(delta: pd.DataFrame, fmt: str = "markdown", seeds: int | None = 0) -> pd.DataFrame:
    """One row per (model, variant), one column per compared column: ``ours − published (published)``
    and the cell's marks: ``n=k`` where it has fewer than ``seeds`` (the paper's; None: not stated,
    always shown), ``cap``, ``inv``, ``+k failed``."""
    esc, labels = render.ESCAPE[fmt], dataset_labels()
    seen = list(dict.fromkeys(delta["column"]))  # params first and Avg. last, as in the tables
    columns = sorted(seen, key=lambda c: (c != PARAMS, c == AVG, seen.index(c)))
    keys = list(dict.fromkeys(zip(delta["model"], delta["method"], strict=True)))
    cells = {(r.model, r.method, r.column): r for r in delta.itertuples()}
    out = pd.DataFrame({"model": [esc(m) for m, _ in keys], "method": [esc(v) for _, v in keys]})
    for column in columns:
        shown = []
        for model, label in keys:
            r = cells.get((model, label, column))
            if r is None:
                shown.append("")
            elif column == PARAMS:
                shown.append(esc(f"{_signed_int(r.delta)} ({int(r.published):,})"))
            else:
                d = _digits(column)
                value = round(r.delta, d) + 0.0  # -0.00 shows as +0.00
                text = render.DASH if not math.isfinite(value) else f"{value:+.{d}f}"
                m = _row_marks(r)
                shown.append(
                    esc(" ".join(filter(None, (f"{text} ({r.published:.{d}f})", m and m.text(seeds)))))
                )
        out[esc(_header(column, labels))] = shown
    return out


def _signed_int(value: float) -> str:
    return render.DASH if not math.isfinite(value) else f"{int(round(value)):+,}"


_CONVENTION_TEXT = {
    "paper": "the paper's scoring script (metrics_paper)",
    "peftbench": "peftbench's scoring (metrics)",
}


def _coverage(table: pd.DataFrame) -> str:
    a = table.attrs
    shown, n_paper = len(a.get("datasets", [])), a.get("n_paper", 0)
    lo, hi = a.get("seeds", (0, 0))
    seeds = f"{lo} seeds per cell" if lo == hi else f"{lo}-{hi} seeds per cell"
    fewer = f" (of the paper's {n_paper}: fewer than the paper averages)" if shown < n_paper else ""
    return f"{seeds}. Avg.: mean over the {shown} datasets shown{fewer}; a row missing any has none"


def _scored_by(table: pd.DataFrame) -> str:
    """``scored by the paper's scoring script (metrics_paper): f1 on SST-2, QQP; f1_macro on CB``."""
    labels = dataset_labels()
    by_metric: dict[str, list[str]] = {}
    for dataset in table.attrs.get("datasets", []):
        metric = table.attrs.get("metrics", {}).get(dataset)
        if metric:
            by_metric.setdefault(metric, []).append(labels.get(dataset, dataset))
    metrics = "; ".join(f"{m} on {', '.join(ds)}" for m, ds in sorted(by_metric.items()))
    return f"scored by {_CONVENTION_TEXT[table.attrs['convention']]}" + (f": {metrics}" if metrics else "")


MARKS_LEGEND = (
    "After a number: cap: dataset.max_eval_samples cut the test split; inv: the mean invalid-answer rate "
    "of the scored runs (shown above 0); +k failed, diverged, running or not scored: the runs that count "
    "in no mean (never dropped)"
)


def caption(name: str, table: pd.DataFrame) -> str:
    """The caption of paper table ``name`` (table1, table2, table3, stability)."""
    dash = f"{render.DASH}: no scored run. {MARKS_LEGEND}"
    if name in ("table1", "table2"):
        what = "GLUE and SuperGLUE" if name == "table1" else "Others, Math and Code"
        params = " params: trainable parameters (median over runs)." if PARAMS in table.columns else ""
        return (
            f"PEFT-Bench Table {name[-1]} layout ({what}): test score x100, mean over seeds, "
            f"{_scored_by(table)}; {_coverage(table)}.{params} {dash}; Avg. carries its cells' marks."
        )
    if name == "stability":
        return (
            "Stability (PEFT-Bench's study datasets): std over seeds x100 (ddof=1; one seed gives none), "
            f"{_scored_by(table)}; {_coverage(table)}. {dash}; Avg. carries its cells' marks."
        )
    c = table.attrs["constants"]
    shown, n_paper = len(table.attrs["datasets"]), table.attrs["n_paper"]
    return (
        f"PEFT-Bench Table 3 layout: performance x100 = the mean over the {shown} datasets of Tables 1-2 "
        f"present (the paper: {n_paper}) of each one's mean over seeds, {_scored_by(table)} (a row missing "
        "any dataset has none); TFLOPs: extra inference FLOPs (median over runs); memory GB: training "
        f"memory, the mean over runs of the {table.attrs['memory']}; f_params, f_flops, f_mem = "
        f"(1 + cost/C)^-beta with C = {c['c_params']:.3g} parameters, {c['c_flops'] / 1e12:.3g} TFLOPs, "
        f"{c['c_memory'] / 1e9:.3g} GB and beta = {c['beta_params']:g}, {c['beta_flops']:g}, "
        f"{c['beta_memory']:g}; PSCP x100. The base model has no row. {dash}; performance carries the marks "
        "of its datasets' cells (they hold for the row's PSCP)."
    )


def deltas_caption(reference: Reference) -> str:
    seeds = published_seeds(reference)
    fewer = (
        f"n=k: our seeds where fewer than the paper's {seeds}"
        if seeds
        else "n=k: our seeds (the paper does not state its own)"
    )
    what = "performance (it holds for PSCP)" if reference.kind == "pscp" else "Avg. pooling its cells"
    return (
        f"Ours minus published (published in parentheses): {reference.citation()}; "
        f"{reference.source['what']} Compared: rows of {reference.model} scored by the paper's script with "
        "the paper's prompts (dataset.prompt_style=paper); Avg.: against the mean of the published cells "
        f"of the same datasets. Marks ({what}): {fewer}; cap: dataset.max_eval_samples cut the test split "
        "(the paper scored the whole test split); inv: the mean invalid-answer rate of the scored runs; "
        "+k failed, diverged, running or not scored: runs that count in no mean. A marked delta is not "
        "comparable as it stands. The published numbers: multirun_analysis/reference/papers.yaml."
    )


# ---- one entry point ----

_TABLES: dict[str, Callable[..., pd.DataFrame]] = {
    "table1": table1,
    "table2": table2,
    "table3": table3,
    "stability": stability,
}


def _ours_for(runs: pd.DataFrame, reference: Reference, convention: str, constants) -> pd.DataFrame:
    if reference.kind == "pscp":
        return table3(runs, convention, constants)
    table = score_table(runs, reference.columns, convention)
    if reference.trainable_params is not None and not table.empty:
        table.insert(0, PARAMS, _median_params(runs[runs["dataset"].isin(reference.columns)], table.index))
    return table


def _write(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def _outputs(name: str, shown, caption_text: str, tidy: pd.DataFrame, out_dir: Path):
    md = render.markdown(shown("markdown")) + "\n\n" + caption_text
    _write(out_dir / f"paper_{name}.md", md + "\n")
    _write(out_dir / f"paper_{name}.tex", render.latex(shown("latex"), caption_text, f"tab:paper_{name}"))
    _write(out_dir / f"paper_{name}.csv", tidy.to_csv(index=False))
    fragment = shown("html").to_html(index=False, escape=False) + f"<p>{html.escape(caption_text)}</p>"
    return f"paper_{name}", md, fragment


def write_paper_tables(
    runs: pd.DataFrame,
    out_dir: str | Path,
    convention: str | None = None,
    constants: PSCPConfig | None = None,
) -> list[tuple[str, str, str]]:
    """Write ``paper_<name>.{md,tex,csv}`` under ``out_dir`` for table1, table2, table3, stability (those
    with any of their datasets in ``runs``) and ``paper_deltas_<reference>`` for each published table
    that some rows reproduce (:func:`comparable_rows`). Returns (name, Markdown with caption, HTML
    fragment) per table written. CSVs hold the numbers (our dataset names; deltas one row per cell)."""
    out_dir = Path(out_dir)
    if runs.empty:
        return []
    runs = with_record_fields(runs)  # each result.json read once, not once per table
    convention = resolve_convention(runs, convention)
    written = []
    for name, build in _TABLES.items():
        table = build(runs, convention, constants) if name == "table3" else build(runs, convention)
        if table.empty:
            continue
        written.append(
            _outputs(
                name,
                functools.partial(display_frame, table),
                caption(name, table),
                table.reset_index(),
                out_dir,
            )
        )
    for ref in load_reference().values():
        rows = comparable_rows(runs, ref, convention)
        if not rows:
            continue
        keep = set(rows)
        mine = runs[[key in keep for key in zip(runs["model"], runs["label"], strict=True)]]
        delta = deltas(_ours_for(mine, ref, convention, constants), ref)
        if delta.empty:
            continue
        written.append(
            _outputs(
                f"deltas_{ref.name}",
                functools.partial(deltas_frame, delta, seeds=published_seeds(ref)),
                deltas_caption(ref),
                delta,
                out_dir,
            )
        )
    return written
