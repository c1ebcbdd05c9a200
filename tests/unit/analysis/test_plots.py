"""Plots: axes within the metric's range, strip plots for few seeds, legends clear of the points, no text
outside the figure, Pareto fronts, one plot per dataset group. Inspected on the matplotlib objects."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from multirun_analysis import plots  # noqa: E402

LONG = "lora [eval.mode=generate, method.options.target_modules=all-linear, r=16, $x$]"


def runs_frame(cells: dict[tuple[str, str], list[float]], metric: str = "f1_macro", **costs) -> pd.DataFrame:
    """Successful runs: ``cells`` maps (label, dataset) to the headline per seed (x1);
    ``costs[label] = (trainable params, peak memory bytes)``."""
    rows = []
    for (label, dataset), values in cells.items():
        params, memory = costs.get(label.split(" ")[0], (1000, 1e9))
        for seed, value in enumerate(values, 1):
            rows.append(
                {
                    "status": "success",
                    "model": "m",
                    "method": label.split(" ")[0],
                    "label": label,
                    "dataset": dataset,
                    "seed": seed,
                    "headline_metric": metric,
                    "headline_value": value,
                    "trainable_params": params,
                    "peak_memory_bytes": memory,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_y_limits_pad_the_data_within_the_metric_range():
    # F1 in [0, 100]: data 0..60, pad 8% of 60 = 4.8; the bottom stays at 0, not -4.8
    assert plots.y_limits([0.0, 40.0, 60.0], plots.metric_range(["f1_macro"])) == pytest.approx((0.0, 64.8))
    # MCC may be negative: -30..50, pad 6.4 each side
    assert plots.y_limits([-30.0, 50.0], plots.metric_range(["mcc"])) == pytest.approx((-36.4, 56.4))
    # accuracy near the top: never above 100; a tight spread gets at least 1 point of room
    assert plots.y_limits([99.5, 100.0], plots.metric_range(["accuracy"])) == pytest.approx((98.5, 100.0))
    assert plots.metric_range(["accuracy", "pearson"]) == (-100.0, 100.0)


def test_f1_plot_with_a_zero_never_goes_negative_and_mcc_may():
    f1 = runs_frame({("lora", "glue/sst2"): [0.0, 0.2], ("ia3", "glue/sst2"): [0.5, 0.6]})
    ax = plots.strip_figure(f1).axes[0]
    assert ax.get_ylim()[0] == 0.0 and ax.get_ylim()[1] == pytest.approx(64.8)
    mcc = runs_frame({("lora", "glue/cola"): [-0.3, 0.5]}, metric="mcc")
    assert plots.strip_figure(mcc).axes[0].get_ylim() == pytest.approx((-36.4, 56.4))


def test_strip_plot_up_to_five_seeds_box_plot_above():
    runs = runs_frame(
        {
            ("a", "glue/sst2"): [0.5, 0.6],
            ("b", "glue/sst2"): [0.1, 0.2, 0.3, 0.4, 0.5],
            ("c", "glue/sst2"): [0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
        }
    )
    ax = plots.strip_figure(runs).axes[0]
    seeds = [c for c in ax.collections if c.get_gid() == "seeds"]
    assert [len(c.get_offsets()) for c in seeds] == [2, 5]  # one point per seed; none for c's 6 seeds
    np.testing.assert_allclose(seeds[1].get_offsets()[:, 1], [10, 20, 30, 40, 50])
    boxes = [line for line in ax.get_lines() if line.get_gid() == "box"]
    assert boxes and {round(float(np.mean(line.get_xdata()))) for line in boxes} == {2}  # only c
    means = [line for line in ax.get_lines() if line.get_gid() == "mean"]
    assert [line.get_ydata()[0] for line in means] == pytest.approx([55, 30, 55])
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["a (n=2)", "b (n=5)", "c (n=6)"]


def _markers(fig):
    """(x, y, radius) in display pixels of every scatter point of every axes."""
    points = []
    for ax in fig.axes:
        for coll in ax.collections:
            offsets = np.asarray(coll.get_offsets())
            radius = np.sqrt(coll.get_sizes()[0]) / 2 * fig.dpi / 72  # sizes are in points squared
            points += [(x, y, radius) for x, y in coll.get_offset_transform().transform(offsets)]
    return points


@pytest.mark.parametrize("kind", ["pareto", "strip"])
def test_legend_covers_no_point(kind):
    # points spread over the axes, one low on the right (where the old legend sat, in the Pareto plot)
    costs = {"a": (10, 1e9), "b": (10_000, 2e9), "c": (1_000_000, 3e9), "d": (1_000_000_000, 4e9)}
    runs = runs_frame(
        {
            ("a", "glue/sst2"): [0.9],
            ("b", "glue/sst2"): [0.5],
            ("c", "glue/sst2"): [0.95],
            ("d", "glue/sst2"): [0.1],
        },
        **costs,
    )
    if kind == "pareto":
        fig = plots.pareto_figure(
            plots.cost_points(runs, "trainable_params"), 50.0, "params", "t", log_x=True
        )
    else:
        fig = plots.strip_figure(runs)
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    legend = fig.legends[0].get_window_extent(renderer)
    points = _markers(fig)
    assert len(points) == 4
    inside = [
        (x, y)
        for x, y, r in points
        if legend.x0 - r < x < legend.x1 + r and legend.y0 - r < y < legend.y1 + r
    ]
    assert not inside, f"legend {legend} covers {inside}"


@pytest.mark.parametrize("kind", ["pareto", "strip"])
def test_no_text_leaves_the_figure(kind, tmp_path):
    labels = [LONG, "ia3", "prompt_tuning [num_virtual_tokens=20, init=TEXT]", "bitfit"]
    costs = {
        "lora": (1_600_000, 9e9),
        "ia3": (50_000, 4e9),
        "prompt_tuning": (20_000, 5e9),
        "bitfit": (1e5, 6e9),
    }
    cells = {
        (lab, d): [0.5 + 0.1 * i, 0.6 + 0.1 * i]
        for i, lab in enumerate(labels)
        for d in ("glue/sst2", "glue/mrpc")
    }
    runs = runs_frame(cells, **costs)
    if kind == "pareto":
        fig = plots.pareto_figure(
            plots.cost_points(runs, "trainable_params"), None, "params", "t", log_x=True
        )
    else:
        fig = plots.strip_figure(runs)
    fig.savefig(tmp_path / f"{kind}.png", dpi=100, bbox_inches="tight")  # the layout as saved
    fig.canvas.draw()  # measure on the canvas (a tight save draws once shifted)
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox  # the figure's own area: a constrained layout keeps every text inside it
    saved = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)  # what bbox_inches="tight" keeps
    for ax in fig.axes:  # point labels stay inside the plot area (off the legend, the title, the ticks)
        for note in ax.texts:
            box = note.get_window_extent(renderer)
            assert ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1 and box.y1 <= ax.bbox.y1, note.get_text()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert any("target_modules=all-linear" in t.get_text() for t in texts)  # the long label is shown
    for t in texts:
        box = t.get_window_extent(renderer)
        for frame in (canvas, saved):  # 2 px (0.02 in) of slack: text extents are measured, not laid out
            assert (
                box.x0 >= frame.x0 - 2
                and box.y0 >= frame.y0 - 2
                and box.x1 <= frame.x1 + 2
                and box.y1 <= frame.y1 + 2
            ), f"{t.get_text()!r} at {box} outside {frame}"


def test_pareto_front_is_drawn_and_costs_come_from_the_runs():
    costs = {"a": (100, 1e9), "b": (1000, 3e9), "c": (10_000, 2e9)}
    runs = runs_frame({("a", "d"): [0.5, 0.7], ("b", "d"): [0.8], ("c", "d"): [0.7]}, **costs)
    points = plots.cost_points(runs, "trainable_params")
    assert points[["label", "performance", "cost"]].values.tolist() == [
        ["a", pytest.approx(60.0), 100],
        ["b", pytest.approx(80.0), 1000],
        ["c", pytest.approx(70.0), 10_000],
    ]
    ax = plots.pareto_figure(points, None, "params", "t", log_x=True).axes[0]
    front = [line for line in ax.get_lines() if line.get_label() == "Pareto front"]
    assert len(front) == 1 and list(front[0].get_xdata()) == [100, 1000]  # c is beaten by b
    assert ax.get_xscale() == "log"
    memory = plots.cost_points(runs, "peak_memory_bytes")  # GB, mean over runs
    assert memory["cost"].tolist() == [1.0, 3.0, 2.0]
    assert plots.pareto_front(list(zip(memory["cost"], memory["performance"], strict=True))) == [0, 2, 1]


def test_a_variant_missing_a_dataset_is_not_drawn():
    # a has d1 (0.5) and d2 (0.7): 60.0; b has d1 only (0.9): its 90.0 would be over other datasets
    runs = runs_frame({("a", "d1"): [0.5], ("a", "d2"): [0.7], ("b", "d1"): [0.9]})
    points = plots.cost_points(runs, "trainable_params")
    assert points[["label", "performance"]].values.tolist() == [["a", pytest.approx(60.0)]]
    assert points.attrs["incomplete"] == 1


def test_files_per_group_and_no_memory_plot_without_memory(tmp_path):
    runs = runs_frame({("a", "glue/sst2"): [0.5, 0.6], ("a", "math/gsm8k"): [0.2], ("b", "glue/sst2"): [0.7]})
    by_group = plots.group_plots(runs, tmp_path)
    assert {g: [p.name for p in ps] for g, ps in by_group.items()} == {
        "GLUE": ["seed_spread_glue.png", "seed_spread_glue.pdf"],
        "Math": ["seed_spread_math.png", "seed_spread_math.pdf"],
    }
    assert (tmp_path / "seed_spread.pdf").stat().st_size > 1000  # every dataset in one figure too
    runs["peak_memory_bytes"] = 0  # a CPU run records none
    assert plots.performance_vs_memory(runs, tmp_path) == []
    assert [p.name for p in plots.performance_vs_params(runs, tmp_path)] == [
        "performance_vs_params.png",
        "performance_vs_params.pdf",
    ]
