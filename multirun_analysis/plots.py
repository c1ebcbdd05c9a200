"""Publication-ready plots (matplotlib, Agg), each saved as PNG (for the report) and PDF (for a paper).

- :func:`seed_spread`: the headline metric over seeds, one panel per dataset. A cell with at most
  :data:`STRIP_MAX` seeds is a strip plot (every seed a point, the mean a bar): a box plot of 2 seeds
  invents quartiles. Larger cells get a box plot.
- :func:`performance_vs_params` / :func:`performance_vs_memory`: mean headline over datasets against
  trainable parameters (log x) or peak training memory, with each model's Pareto front. As in the PSCP
  table, a variant missing a dataset that another variant of its model has is not drawn (its mean would
  be over other datasets); the title says how many were left out.

The y axis never leaves the metric's range (accuracy and F1 never go below 0; Pearson and MCC may go to
-1); legends sit outside the axes so they cover no point; labels are wrapped and the layout is
constrained, so no text leaves the figure.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from multirun_analysis.tables import (
    BASE_METHOD,
    _ordered_columns,
    dataset_group,
    mean_over_datasets,
    successful,
)

DPI = 200  # of the PNGs (the report shows them at their printed size)
STRIP_MAX = 5  # seeds per cell up to which every seed is drawn as a point
# Headline metrics that can be negative (x1); every other metric of the benchmark lies in [0, 1].
SIGNED_METRICS = {"pearson": (-1.0, 1.0), "spearman": (-1.0, 1.0), "mcc": (-1.0, 1.0)}
UNIT_RANGE = (0.0, 1.0)
WRAP = 22  # characters per line of a point's label in the Pareto plots
TICK_WRAP = 40  # characters per line of a rotated tick label (longer ones continue on a second line)
RC = {
    "pdf.fonttype": 42,  # TrueType in the PDF: text stays editable and searchable
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats (fewer or equal params AND higher or equal performance,
    one strictly), sorted by params."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def metric_range(metrics: Iterable[str], scale: float = 100.0) -> tuple[float, float]:
    """The range the headline ``metrics`` can take, times ``scale`` (the union when several)."""
    ranges = [SIGNED_METRICS.get(str(m), UNIT_RANGE) for m in metrics] or [UNIT_RANGE]
    return min(r[0] for r in ranges) * scale, max(r[1] for r in ranges) * scale


def y_limits(values: Iterable[float], bounds: tuple[float, float]) -> tuple[float, float]:
    """The data's range padded by 8% (at least 1 point), never beyond ``bounds``: an F1 of 0 puts the
    axis at 0, not at -5. Data outside ``bounds`` (a metric not known here) widen them."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if not len(v):
        return bounds
    lo, hi = float(v.min()), float(v.max())
    pad = max(0.08 * (hi - lo), 1.0)
    return (max(bounds[0], lo - pad) if lo >= bounds[0] else lo - pad), (
        min(bounds[1], hi + pad) if hi <= bounds[1] else hi + pad
    )


def plain(text: object) -> str:
    """Text matplotlib shows as written: ``$`` would start mathtext."""
    return str(text).replace("$", r"\$")


def wrap(text: object, width: int = WRAP) -> str:
    """A long variant label on several lines, broken at spaces only (a key=value stays whole)."""
    lines = textwrap.wrap(plain(text), width, break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines) or plain(text)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "all"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.05)
    return paths


def _rows_label(model: str, label: str, many_models: bool) -> str:
    return f"{label} ({model})" if many_models else label


# ---- spread over seeds ----


def strip_figure(runs: pd.DataFrame, datasets: Iterable[str] | None = None, title: str = "Spread over seeds"):
    """The figure of :func:`seed_spread` for ``datasets`` (default: every dataset with a scored run)."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    ok = successful(runs)
    present = [d for _, d in _ordered_columns(ok["dataset"])] if len(ok) else []
    datasets = [d for d in (present if datasets is None else datasets) if d in set(present)]
    many_models = ok["model"].nunique() > 1
    ncols = min(3, max(1, len(datasets)))
    nrows = max(1, math.ceil(len(datasets) / ncols))
    widest = max((ok[ok["dataset"] == d].groupby(["model", "label"]).ngroups for d in datasets), default=1)
    width = ncols * max(2.8, 0.45 * widest + 1.6)
    with plt.rc_context(RC):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(width, 3.4 * nrows), squeeze=False, layout="constrained"
        )
        boxed = False
        for ax, dataset in zip(axes.flat, datasets, strict=False):
            sub = ok[ok["dataset"] == dataset]
            cells = sorted(sub.groupby(["model", "label"]), key=lambda kv: kv[0])
            values = []
            for x, (_, cell) in enumerate(cells):
                v = cell.sort_values("seed")["headline_value"].to_numpy(float) * 100
                values.extend(v)
                if len(v) <= STRIP_MAX:
                    offsets = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else np.zeros(1)
                    ax.scatter(x + offsets, v, s=16, color="tab:blue", zorder=3, clip_on=False, gid="seeds")
                else:
                    boxed = True
                    parts = ax.boxplot(v, positions=[x], widths=0.5, showfliers=True, manage_ticks=False)
                    for line in [*parts["boxes"], *parts["whiskers"], *parts["caps"], *parts["medians"]]:
                        line.set_gid("box")
                ax.plot([x - 0.28, x + 0.28], [v.mean()] * 2, color="black", lw=1.6, zorder=4, gid="mean")
            ax.set_xticks(
                range(len(cells)),
                [
                    wrap(f"{_rows_label(m, lab, many_models)} (n={len(c)})", TICK_WRAP)
                    for (m, lab), c in cells
                ],
                rotation=40,
                ha="right",
                rotation_mode="anchor",
            )
            ax.set_xlim(-0.6, len(cells) - 0.4)
            metrics = sorted(set(sub["headline_metric"].dropna()))
            ax.set_ylim(*y_limits(values, metric_range(metrics)))
            ax.set_ylabel(plain(f"{'/'.join(metrics) or 'headline'} (x100)"))
            ax.set_title(plain(dataset))
            ax.grid(True, axis="y", alpha=0.3)
        for ax in list(axes.flat)[len(datasets) :]:
            ax.set_visible(False)
        handles = [
            Line2D([], [], ls="", marker="o", ms=4, color="tab:blue", label="one seed"),
            Line2D([], [], color="black", lw=1.6, label="mean over seeds"),
        ]
        if boxed:
            handles.append(Line2D([], [], color="black", lw=1, label=f"box: n > {STRIP_MAX} seeds"))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
        fig.suptitle(plain(title))
    return fig


def seed_spread(
    runs: pd.DataFrame,
    out: Path,
    datasets: Iterable[str] | None = None,
    name: str = "seed_spread",
    title: str = "Spread over seeds",
) -> list[Path]:
    """Strip plots (box plots above :data:`STRIP_MAX` seeds) of the headline metric (x100) over seeds,
    one panel per dataset, one column per variant; ``name``.{png,pdf}."""
    plt = _pyplot()
    fig = strip_figure(runs, datasets, title)
    paths = _save(fig, out, name)
    plt.close(fig)
    return paths


# ---- performance vs cost ----


def cost_points(runs: pd.DataFrame, cost: str) -> pd.DataFrame:
    """Per trained (model, variant): ``performance`` (x100, the mean over datasets of the mean over seeds,
    as in the PSCP table), ``cost`` (median trainable parameters, or mean peak memory in GB), and the
    headline metrics involved. Variants without a positive cost are left out, and so are those missing a
    dataset another variant of their model has (counted in ``attrs["incomplete"]``)."""
    ok = successful(runs)
    ok = ok[ok["method"] != BASE_METHOD]
    if ok.empty:
        return pd.DataFrame(columns=["model", "label", "performance", "cost", "metrics"])
    per_dataset = ok.groupby(["model", "label", "dataset"])["headline_value"].mean()
    perf = mean_over_datasets(per_dataset) * 100
    values = pd.to_numeric(ok[cost], errors="coerce")
    if cost == "peak_memory_bytes":
        spent = values.groupby([ok["model"], ok["label"]]).mean() / 1e9
    else:
        spent = values.groupby([ok["model"], ok["label"]]).median()
    metrics = ok.groupby(["model", "label"])["headline_metric"].agg(lambda m: sorted(set(m.dropna())))
    table = pd.DataFrame({"performance": perf, "cost": spent, "metrics": metrics}).reset_index()
    table = table[table["cost"] > 0]
    complete = table["performance"].notna()
    table = table[complete].reset_index(drop=True)
    table.attrs["incomplete"] = int((~complete).sum())
    return table


def pareto_figure(points: pd.DataFrame, base: float | None, xlabel: str, title: str, log_x: bool):
    """Performance (y) against a cost (x) per variant, each model's Pareto front as a step line."""
    plt = _pyplot()
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
        models = sorted(points["model"].unique())
        many = len(models) > 1
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        if log_x:
            ax.set_xscale("log")
        xs = points["cost"].to_numpy(float)
        lo, hi = (np.log10(xs.min()), np.log10(xs.max())) if log_x else (xs.min(), xs.max())
        span = max(hi - lo, 1.0 if log_x else max(abs(hi) * 0.2, 1e-3))
        left, right = lo - 0.15 * span, hi + 0.15 * span
        ax.set_xlim(*((10**left, 10**right) if log_x else (max(0.0, left), right)))
        mid = (lo + hi) / 2
        for k, model in enumerate(models):
            mine = points[points["model"] == model].reset_index(drop=True)
            colour = colours[k % len(colours)]
            ax.scatter(
                mine["cost"],
                mine["performance"],
                color=colour,
                s=22,
                zorder=3,
                clip_on=False,
                gid="variant",
                label=plain(model) if many else "variant",
            )
            for row in mine.itertuples():
                x = math.log10(row.cost) if log_x else row.cost
                right_side = x > mid and len(points) > 1
                ax.annotate(
                    wrap(row.label),
                    (row.cost, row.performance),
                    textcoords="offset points",
                    xytext=(-5 if right_side else 5, 4),
                    ha="right" if right_side else "left",
                    va="bottom",
                    fontsize=7,
                )
            front = pareto_front(list(zip(mine["cost"], mine["performance"], strict=True)))
            if len(front) > 1:
                ax.step(
                    mine.loc[front, "cost"],
                    mine.loc[front, "performance"],
                    where="post",
                    ls="--",
                    color=colour,
                    lw=1,
                    zorder=2,
                    label=f"Pareto front ({plain(model)})" if many else "Pareto front",
                )
        values = list(points["performance"])
        if base is not None:
            ax.axhline(base, color="grey", lw=1, ls=":", label="base model (not trained)")
            values.append(base)
        metrics = sorted({m for ms in points["metrics"] for m in ms})
        low, high = y_limits(values, metric_range(metrics))
        ax.set_ylim(low, min(high + 0.06 * (high - low), metric_range(metrics)[1]))  # room for labels
        ax.set_xlabel(xlabel)
        ax.set_ylabel(plain(f"mean {'/'.join(metrics) or 'headline'} over datasets (x100)"))
        ax.set_title(plain(title))
        ax.grid(True, which="both", alpha=0.3)
        fig.legend(loc="outside right upper", frameon=False)
    return fig


def _base_performance(runs: pd.DataFrame) -> float | None:
    base = successful(runs)
    base = base[base["method"] == BASE_METHOD]
    return None if base.empty else base.groupby("dataset")["headline_value"].mean().mean() * 100


def _cost_plot(runs, out, cost, name, xlabel, title, log_x) -> list[Path]:
    points = cost_points(runs, cost)
    if points.empty:
        return []
    if points.attrs["incomplete"]:
        title += f" ({points.attrs['incomplete']} variant(s) missing a dataset not shown)"
    plt = _pyplot()
    fig = pareto_figure(points, _base_performance(runs), xlabel, title, log_x)
    paths = _save(fig, out, name)
    plt.close(fig)
    return paths


def performance_vs_params(runs: pd.DataFrame, out: Path) -> list[Path]:
    """Mean headline (x100, over datasets and seeds) against trainable parameters (log x), with each
    model's Pareto front; ``performance_vs_params.{png,pdf}`` (none when no method was trained)."""
    return _cost_plot(
        runs,
        out,
        "trainable_params",
        "performance_vs_params",
        "trainable parameters (log scale)",
        "Performance vs trainable parameters",
        log_x=True,
    )


def performance_vs_memory(runs: pd.DataFrame, out: Path) -> list[Path]:
    """As :func:`performance_vs_params` against peak training memory (GB, mean over runs);
    ``performance_vs_memory.{png,pdf}``, none when no run recorded its memory."""
    return _cost_plot(
        runs,
        out,
        "peak_memory_bytes",
        "performance_vs_memory",
        "peak training memory (GB)",
        "Performance vs training memory",
        log_x=False,
    )


def group_plots(runs: pd.DataFrame, out: Path) -> dict[str, list[Path]]:
    """``seed_spread.{png,pdf}`` over every dataset, and per dataset group (GLUE, Math, ...) its own
    ``seed_spread_<group>.{png,pdf}`` when there are several groups. Returns the files per group."""
    ok = successful(runs)
    groups: dict[str, list[str]] = {}
    for _group, dataset in _ordered_columns(ok["dataset"]):
        groups.setdefault(dataset_group(dataset), []).append(dataset)
    every = seed_spread(runs, out)
    if len(groups) <= 1:
        return {g: every for g in groups}
    return {
        g: seed_spread(runs, out, ds, f"seed_spread_{slug(g)}", f"{g}: spread over seeds")
        for g, ds in groups.items()
    }
