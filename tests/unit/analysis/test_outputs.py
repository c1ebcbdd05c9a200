"""Done-when for the analysis: the mixed tree through the CLI gives labelled variants with n and CIs,
the failed run listed, nothing counted twice; tidy single-header CSVs; every .tex compiles (pdflatex)."""

from __future__ import annotations

import shutil
from pathlib import Path

import mixed_tree  # tests/unit/analysis is on sys.path (pytest prepend mode)
import pandas as pd
import pytest

from multirun_analysis.__main__ import main

R8, R16, SCORE = (
    "lora [eval.mode=generate, r=8]",
    "lora [eval.mode=generate, r=16]",
    "lora [eval.mode=score, r=16]",
)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    results = mixed_tree.build(root)
    out = root / "tables"
    main([str(results), str(results), "--out", str(out), "--no-plots", "--compare", R16, R8])
    return out


def test_mixed_tree_tables(out):
    perf = (out / "performance.md").read_text()
    # separate labelled variants, each with mean ±std [CI]† n=seeds×examples, the cap and invalid rate
    assert f"| {R8} " in perf and f"| {R16} " in perf and f"| {SCORE} " in perf
    assert "81.2 ±8.8 [62.3, 100.0]† n=2×8 cap inv 12.5% +1 failed" in perf  # the failed seed 3 shown
    assert "93.8 ±8.8 [75.0, 100.0]† n=2×8 cap inv 12.5%" in perf
    assert "50.0 [12.5, 87.5]† n=1×8 cap inv 12.5%" in perf
    assert "glue/sst2 (accuracy)" in perf and "† also over test examples within seeds" in perf
    cells = pd.read_csv(out / "cells.csv").set_index("method")
    assert cells["n_seeds"].to_dict() == {R16: 2, R8: 2, SCORE: 1}  # the copied run counted once
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 6 and runs["run_key"].is_unique
    assert runs.loc[runs["status"] == "failed", "label"].tolist() == [R8]
    failures = pd.read_csv(out / "failures.csv")
    assert failures[["status", "label", "seed"]].values.tolist() == [["failed", R8, 3]]
    compare = pd.read_csv(out / "compare.csv").iloc[0]
    assert (compare["diff"], compare["p"], compare["unit"]) == (12.5, 0.5, "examples")


def test_csvs_are_tidy_with_one_header(out):
    for name in ("runs.csv", "metrics.csv", "cells.csv", "pscp.csv", "compare.csv", "failures.csv"):
        first = (out / name).read_text().splitlines()[:2]
        header = first[0].split(",")
        assert header[0] and "Unnamed" not in first[0] and not first[1].startswith(","), name
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["convention"]) == {"peftbench"}
    assert len(metrics) == 5 * 2  # 5 scored runs x (accuracy, invalid_rate); the failed run has none


def test_metrics_paper_is_a_second_convention(tmp_path):
    rec = mixed_tree.record(8, "generate", 1)
    rec["metrics_paper"] = {"f1_binary": 0.7}
    mixed_tree.write_run(tmp_path / "r", rec, None)
    main([str(tmp_path), "--out", str(tmp_path / "t"), "--no-plots"])
    metrics = pd.read_csv(tmp_path / "t" / "metrics.csv")
    paper = metrics[metrics["convention"] == "paper"]
    assert paper[["metric", "value"]].values.tolist() == [["f1_binary", 0.7]]


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex absent (Debian texlive-latex-base)")
def test_every_tex_compiles(out, tmp_path):
    names = sorted(p.name for p in out.glob("*.tex"))
    assert names == ["compare.tex", "performance.tex", "pscp.tex", "stability.tex"]
    golden = Path(__file__).parent / "golden"  # names with '_' (f1_macro, f_params) included
    for i, path in enumerate([*(out / n for n in names), *sorted(golden.glob("*.tex"))]):
        pdf = mixed_tree.compile_tex([path], tmp_path, f"doc{i}_{path.stem}")
        assert pdf.stat().st_size > 1000


def test_nan_headline_and_diverged_runs_are_shown_not_dropped(tmp_path, capsys):
    nan = mixed_tree.record(8, "generate", 1)
    nan.update(headline_value=float("nan"), run_key="nan")
    diverged = mixed_tree.record(8, "generate", 2, status="diverged")
    diverged["error"] = "Diverged: loss is nan at step 3"
    mixed_tree.write_run(tmp_path / "a", nan, None)
    mixed_tree.write_run(tmp_path / "b", diverged, None)
    main([str(tmp_path), "--out", str(tmp_path / "t"), "--no-plots"])
    printed = capsys.readouterr().out
    assert "| tiny-random | lora     | 8K       | +2 diverged, not scored |" in printed
    assert "not scored: tiny-random lora glue/sst2 seed 1" in printed
    assert "diverged: tiny-random lora glue/sst2 seed 2: Diverged: loss is nan at step 3" in printed


def test_cli_bad_filter_is_one_clear_line(tmp_path):
    mixed_tree.build(tmp_path)
    with pytest.raises(SystemExit, match="no run has the key 'method.options.rank'; did you mean"):
        main([str(tmp_path), "--out", str(tmp_path / "t"), "--filter", "method.options.rank=8"])
    with pytest.raises(SystemExit, match="'lora' has 3 variants"):
        main([str(tmp_path), "--out", str(tmp_path / "t"), "--no-plots", "--compare", "lora", R8])
