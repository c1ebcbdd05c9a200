"""Plots (matplotlib, Agg): performance vs trainable parameters with the Pareto front; spread over seeds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from multirun_analysis.tables import BASE_METHOD, successful


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


def _save(fig, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return paths


def performance_vs_params(runs: pd.DataFrame, out: Path) -> list[Path]:
    """Mean headline (x100, over datasets and seeds) against trainable parameters, log x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = successful(runs)
    ok = ok[ok["method"] != BASE_METHOD]
    per_dataset = ok.groupby(["model", "label", "dataset"])["headline_value"].mean()
    perf = per_dataset.groupby(["model", "label"]).mean() * 100
    params = ok.groupby(["model", "label"])["trainable_params"].median().clip(lower=1)
    keys = list(perf.index)
    points = [(float(params[k]), float(perf[k])) for k in keys]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([p[0] for p in points], [p[1] for p in points], zorder=3)
    for (model, method), (x, y) in zip(keys, points, strict=True):
        ax.annotate(
            method if perf.index.get_level_values(0).nunique() == 1 else f"{method} ({model})",
            (x, y),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    front = pareto_front(points)
    if len(front) > 1:
        ax.plot(
            [points[i][0] for i in front],
            [points[i][1] for i in front],
            "--",
            color="tab:red",
            label="Pareto front",
            zorder=2,
        )
    base = successful(runs)
    base = base[base["method"] == BASE_METHOD]
    if not base.empty:
        ax.axhline(
            base.groupby("dataset")["headline_value"].mean().mean() * 100,
            color="grey",
            lw=1,
            ls=":",
            label="base model",
        )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log)")
    ax.set_ylabel("mean headline metric (x100)")
    ax.set_title("Performance vs trainable parameters")
    ax.grid(True, which="both", alpha=0.3)
    paths = _save(fig, out, "performance_vs_params")
    plt.close(fig)
    return paths


def seed_spread(runs: pd.DataFrame, out: Path) -> list[Path]:
    """Box plots of the headline metric (x100) over seeds, one panel per dataset, one box per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = successful(runs)
    datasets = sorted(ok["dataset"].unique())
    fig, axes = plt.subplots(
        1, max(1, len(datasets)), figsize=(3.2 * max(1, len(datasets)), 3.6), squeeze=False
    )
    for ax, dataset in zip(axes[0], datasets, strict=False):
        sub = ok[ok["dataset"] == dataset]
        methods = sorted(sub["label"].unique())
        ax.boxplot([sub[sub["label"] == m]["headline_value"] * 100 for m in methods], tick_labels=methods)
        ax.set_title(dataset, fontsize=9)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0][0].set_ylabel("headline metric (x100)")
    fig.suptitle("Spread over seeds")
    paths = _save(fig, out, "seed_spread")
    plt.close(fig)
    return paths
