"""Tables from hand-made result records: every number checked by hand; Markdown/LaTeX against golden files."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from bench.config.schema import PSCPConfig
from multirun_analysis import render, tables
from multirun_analysis.__main__ import main
from multirun_analysis.records import load_runs, tidy_metrics
from multirun_analysis.summary import summary_table

GOLDEN = Path(__file__).parent / "golden"

# (method, dataset, seed, headline, trainable, flops_delta, peak_memory)
RUNS = [
    ("none", "glue/sst2", 1, 0.50, 0, 0, 0),
    ("none", "glue/sst2", 2, 0.52, 0, 0, 0),
    ("lora", "glue/sst2", 1, 0.90, 1_000_000, 1e12, 9.4e9),
    ("lora", "glue/sst2", 2, 0.92, 1_000_000, 1e12, 9.4e9),
    ("lora", "glue/sst2", 3, 0.94, 1_000_000, 1e12, 9.4e9),
    ("lora", "superglue/cb", 1, 0.70, 1_000_000, 1e12, 9.4e9),
    ("lora", "superglue/cb", 2, 0.80, 1_000_000, 1e12, 9.4e9),  # seed 3 missing
    ("ia3", "glue/sst2", 1, 0.88, 50_000, 0, 4.7e9),
    ("ia3", "glue/sst2", 2, 0.90, 50_000, 0, 4.7e9),
    ("ia3", "glue/sst2", 3, 0.92, 50_000, 0, 4.7e9),
    ("ia3", "superglue/cb", 1, 0.60, 50_000, 0, 4.7e9),
    ("ia3", "superglue/cb", 2, 0.70, 50_000, 0, 4.7e9),
    ("ia3", "superglue/cb", 3, 0.80, 50_000, 0, 4.7e9),
]


def _write(root: Path, i: int, record: dict) -> None:
    folder = root / f"run{i:02d}"  # folder names mean nothing: records carry the facts
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(record))


@pytest.fixture
def results(tmp_path) -> Path:
    for i, (method, dataset, seed, value, params, flops, mem) in enumerate(RUNS):
        _write(
            tmp_path,
            i,
            {
                "status": "success",
                "error": None,
                "run_key": f"k{i}",
                "model": "m",
                "method": method,
                "method_family": "x",
                "dataset": dataset,
                "seed": seed,
                "trainable_params": params,
                "total_params": 10_000_000,
                "flops_delta": flops,
                "peak_memory_bytes": mem,
                "headline_metric": "f1_macro",
                "headline_value": value,
                "n_test": 872 if dataset == "glue/sst2" else 56,
                "metrics": {"f1_macro": value, "accuracy": value},
                "train_runtime_s": 1.0,
                "eval_runtime_s": 1.0,
            },
        )
    _write(
        tmp_path,
        99,
        {
            "status": "failed",
            "error": "RuntimeError: boom",
            "run_key": "bad",
            "model": "m",
            "method": "ia3",
            "dataset": "superglue/cb",
            "seed": 4,
            "metrics": {},
        },
    )
    return tmp_path


def test_performance_table_numbers(results):
    perf = tables.performance_table(load_runs([results]))
    assert list(perf.index) == [("m", "none"), ("m", "ia3"), ("m", "lora")]  # base model first
    assert list(perf.columns) == [("", "params"), ("GLUE", "glue/sst2"), ("SuperGLUE", "superglue/cb")]
    assert perf.loc[("m", "lora"), ("GLUE", "glue/sst2")] == pytest.approx(92.0)
    assert perf.loc[("m", "lora"), ("SuperGLUE", "superglue/cb")] == pytest.approx(75.0)  # 2 seeds
    assert perf.loc[("m", "ia3"), ("GLUE", "glue/sst2")] == pytest.approx(90.0)
    assert perf.loc[("m", "ia3"), ("SuperGLUE", "superglue/cb")] == pytest.approx(
        70.0
    )  # failed seed 4 ignored
    assert perf.loc[("m", "none"), ("GLUE", "glue/sst2")] == pytest.approx(51.0)
    assert math.isnan(perf.loc[("m", "none"), ("SuperGLUE", "superglue/cb")])
    assert perf.loc[("m", "lora"), ("", "params")] == 1_000_000


def test_stability_table_counts_present_seeds(results):
    std, n = tables.stability_table(load_runs([results]))
    assert std.loc[("m", "lora"), ("GLUE", "glue/sst2")] == pytest.approx(2.0)  # 90, 92, 94
    assert std.loc[("m", "lora"), ("SuperGLUE", "superglue/cb")] == pytest.approx(math.sqrt(50))  # 70, 80
    assert n.loc[("m", "lora"), ("SuperGLUE", "superglue/cb")] == 2  # the missing seed shows
    assert n.loc[("m", "ia3"), ("SuperGLUE", "superglue/cb")] == 3  # the failed seed is not counted
    assert std.loc[("m", "ia3"), ("SuperGLUE", "superglue/cb")] == pytest.approx(10.0)


def test_pscp_table_by_hand(results):
    table = tables.pscp_table(load_runs([results]))
    assert list(table.index) == [("m", "ia3"), ("m", "lora")]  # sorted by PSCP; no base row
    lora = table.loc[("m", "lora")]
    assert lora["performance"] == pytest.approx(83.5)  # mean of 92.0 and 75.0
    assert lora["f_params"] == pytest.approx(1 / 1.002)
    assert lora["f_flops"] == pytest.approx(1 / 1.1)
    assert lora["f_memory"] == pytest.approx(1 / 1.1)
    assert lora["pscp"] == pytest.approx(83.5 / 1.002 / 1.1 / 1.1)  # 68.87
    ia3 = table.loc[("m", "ia3")]
    assert ia3["pscp"] == pytest.approx(80.0 / 1.0001 / 1.05)  # 76.18
    beta2 = tables.pscp_table(load_runs([results]), PSCPConfig(beta_memory=2.0))
    assert beta2.loc[("m", "ia3"), "pscp"] == pytest.approx(80.0 / 1.0001 / 1.05**2)


def test_pscp_leaves_a_row_missing_a_dataset_unranked(results):
    # without lora's superglue/cb runs, lora's mean over sst2 alone (92.0, PSCP 92 / 1.002 / 1.1^2 =
    # 75.9) is not comparable with ia3's over both datasets (80.0, PSCP 76.2): no performance, no PSCP,
    # no rank (averaged over what it has, it was underlined second)
    import shutil

    for i in (5, 6):
        shutil.rmtree(results / f"run{i:02d}")
    runs = load_runs([results])
    table = tables.pscp_table(runs)
    lora, ia3 = table.loc[("m", "lora")], table.loc[("m", "ia3")]
    assert math.isnan(lora["performance"]) and math.isnan(lora["pscp"]) and lora["n_datasets"] == 1
    assert ia3["pscp"] == pytest.approx(80.0 / 1.0001 / 1.05) and ia3["n_datasets"] == 2
    shown = render.pscp_frame(table).set_index("method")
    assert shown.loc["lora", "PSCP"] == "–" and shown.loc["ia3", "PSCP"] == "**76.2**"
    assert math.isnan(ia3["cap"])  # no dataset.max_eval_samples in these records: shown as –


def test_pscp_best_and_second_within_each_model():
    index = pd.MultiIndex.from_tuples([("m1", "a"), ("m1", "b"), ("m2", "c"), ("m2", "d")])
    table = pd.DataFrame(
        {"performance": 1.0, "trainable_params": 1, "f_params": 1.0, "f_flops": 1.0, "f_memory": 1.0}
        | {"pscp": [50.0, 40.0, 30.0, 20.0]},
        index=index.set_names(["model", "method"]),
    )
    # across models m2's c (30) would be third, unmarked; within m2 it is best
    assert render.pscp_frame(table)["PSCP"].tolist() == ["**50.0**", "<u>40.0</u>", "**30.0**", "<u>20.0</u>"]


def test_pscp_table_shows_the_test_cap(tmp_path):
    import mixed_tree  # tests/unit/analysis is on sys.path (pytest prepend mode)

    runs = load_runs([mixed_tree.build(tmp_path)])
    table = tables.pscp_table(runs)
    assert table["cap"].tolist() == [8, 8, 8]  # dataset.max_eval_samples of every run
    assert render.pscp_frame(table)["cap"].tolist() == ["8", "8", "8"]


def test_failures_listed_not_dropped(results):
    runs = load_runs([results])
    assert tables.status_counts(runs) == {"failed": 1, "success": 13}
    failures = tables.failures_table(runs)
    assert failures[["method", "dataset", "seed", "error"]].values.tolist() == [
        ["ia3", "superglue/cb", 4, "RuntimeError: boom"]
    ]


def test_tidy_metrics_one_row_per_run_and_metric(results):
    tidy = tidy_metrics(load_runs([results]))
    assert len(tidy) == 13 * 2 and set(tidy["metric"]) == {"f1_macro", "accuracy"}
    assert set(tidy["convention"]) == {"peftbench"}  # no metrics_paper in these records


GOLDEN_FILES = ("performance.md", "performance.tex", "stability.md", "stability.tex", "pscp.md", "pscp.tex")


def test_markdown_and_latex_match_golden(results, tmp_path, capsys):
    """The golden files are the spec of the table format (regenerate with UPDATE_GOLDEN=1, read the diff)."""
    out = tmp_path / "tables"
    main([str(results), "--out", str(out), "--no-plots"])
    for name in GOLDEN_FILES:
        if os.environ.get("UPDATE_GOLDEN"):
            (GOLDEN / name).write_text((out / name).read_text())
        assert (out / name).read_text() == (GOLDEN / name).read_text(), name


def test_cli_writes_everything(results, tmp_path, capsys):
    out = tmp_path / "tables"
    main([str(results), "--out", str(out)])
    printed = capsys.readouterr().out
    # 3 seeds: the smallest exact paired p is 2/8, so no best is bold; second underlined
    assert "<u>90.0 ±2.0 [88.0, 92.0] n=3×872</u>" in printed
    assert "failed: m ia3 superglue/cb seed 4: RuntimeError: boom" in printed
    assert "70.0 ±10.0 [60.0, 80.0] n=3×56 +1 failed" in printed  # the failed seed shown in its cell
    for name in (
        "performance.md",
        "performance.tex",
        "stability.md",
        "stability.tex",
        "pscp.md",
        "pscp.tex",
        "pscp.csv",
        "cells.csv",
        "runs.csv",
        "metrics.csv",
        "failures.csv",
        "performance_vs_params.png",
        "performance_vs_params.pdf",
        "seed_spread.png",
        "seed_spread.pdf",
        "report.html",
    ):
        assert (out / name).stat().st_size > 100, name
    html = (out / "report.html").read_text()
    # seed plots for GLUE and SuperGLUE, Pareto plots vs trainable parameters and vs memory
    assert html.count("data:image/png;base64,") == 4 and "<u>90.0" in html and "RuntimeError: boom" in html
    assert pd.read_csv(out / "pscp.csv")["pscp"].round(2).tolist() == [76.18, 68.87]
    assert len(pd.read_csv(out / "runs.csv")) == 14  # every run, the failed one too


def test_pareto_front():
    from multirun_analysis.plots import pareto_front

    points = [(10, 50.0), (100, 60.0), (1000, 55.0), (5, 40.0), (100, 58.0)]
    assert pareto_front(points) == [3, 0, 1]


def test_summary_keeps_failed_runs(results):
    table = summary_table(load_runs([results]))
    assert len(table) == 14 and (table["status"] == "failed").sum() == 1
