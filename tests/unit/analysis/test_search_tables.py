"""The search tables from a hand-made results tree: trials (validation only) and final runs as result.json
records, one search.json as bench.search writes it; every number worked out by hand below."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mixed_tree  # tests/unit/analysis is on sys.path (pytest prepend mode)
import pandas as pd
import pytest

from multirun_analysis.__main__ import main
from multirun_analysis.records import load_runs

SPACE = [0.1, 0.3162, 1.0, 3.162, 10.0]
SOFT = [0.01, 0.1, 1.0, 10.0, 100.0]
KEY = "trainer.learning_rate_scale"
SEEDS = [42, 123, 456]
BASE_LR = 1e-4

# (method, family, dataset): space, trial objectives (validation accuracy; None = a failed trial; a
# shorter list = trials missing), chosen scale, default finals, tuned finals, device-hours, wall seconds
CELLS = {
    ("lora", "reparametrized", "glue/sst2"): (
        SPACE,
        [0.70, 0.75, 0.80, 0.85, 0.60],
        3.162,
        [0.80, 0.82, 0.84],  # 82.0 ±2.0
        [0.86, 0.88, 0.90],  # 88.0 ±2.0: +6.0
        0.5,
        1800,
    ),
    ("lora", "reparametrized", "superglue/cb"): (
        SPACE,
        [0.50, 0.60, 0.70, 0.65, None],
        1.0,  # the default won: the tuned runs are the default runs (same run keys)
        [0.70, 0.75, 0.80],  # 75.0 ±5.0
        [0.70, 0.75, 0.80],
        0.25,
        900,
    ),
    ("prompt_tuning", "soft_prompt", "glue/sst2"): (
        SOFT,
        [0.50, 0.55, 0.60, 0.70, 0.75],
        100.0,  # the largest value: at the edge
        [0.50, 0.52, 0.54],  # 52.0 ±2.0
        [0.60, 0.70, 0.80],  # 70.0 ±10.0: +18.0
        0.75,
        2700,
    ),
    ("ia3", "additive", "glue/sst2"): (
        SPACE,
        [None, 0.82, 0.80, 0.79],  # 4 of 5 trials: flagged
        0.3162,
        [0.78, 0.80, 0.82],  # 80.0 ±2.0
        [0.80, 0.84, 0.88],  # 84.0 ±4.0: +4.0
        0.4,
        1440,
    ),
}
N_TRIALS = 5 + 5 + 5 + 4
N_FINAL = 4 * 6 - 3  # lora on CB: its tuned runs are its default runs
VAL_CAP = 200  # search.max_validation_samples
HELD_OUT = {"glue/sst2": 872, "superglue/cb": 56}  # validation rows held out: SST-2 cut by the cap, CB not


def _key(method: str, dataset: str, seed: int, scale: float, trial: bool) -> str:
    tail = "__val" if trial else ""
    return f"tiny-random__{method}__{dataset.replace('/', '-')}__seed{seed}__s{scale:g}{tail}"


def _config(method, family, dataset, seed, scale, trial) -> dict:
    evaluation = {"mode": "generate", "batch_size": 8}
    if trial:
        evaluation.update(test=False, validation=True, max_validation_samples=200)
    return {
        "seed": seed,
        "model": {"name": "tiny-random"},
        "method": {"name": method, "family": family},
        "dataset": {"name": dataset},
        "trainer": {"learning_rate": BASE_LR, "learning_rate_scale": scale},
        "eval": evaluation,
        "search": {"name": "lr"},
    }


def _record(method, family, dataset, seed, scale, value, trial, old=False) -> dict:
    rec = {
        "status": "success" if value is not None else "failed",
        "error": None if value is not None else "RuntimeError: boom",
        "run_key": _key(method, dataset, seed, scale, trial),
        "model": "tiny-random",
        "method": method,
        "method_family": family,
        "dataset": dataset,
        "seed": seed,
        "config": _config(method, family, dataset, seed, scale, trial),
        "trainable_params": 1000,
        "headline_metric": "accuracy",
        "headline_value": None if trial else value,
        "metrics": {} if trial else {"accuracy": value},
        "n_test": 0 if trial else 100,
    }
    if trial:
        rec["validation"] = {
            "split": "validation",
            "n": min(HELD_OUT[dataset], VAL_CAP),
            "n_available": HELD_OUT[dataset],
            "cap": VAL_CAP,
            "headline_metric": "accuracy",
            "headline_value": value,
        }
    if trial and value is None:
        return rec  # a trial that failed before writing test_evaluated: its config says eval.test false
    if not old:
        rec["test_evaluated"] = not trial
    return rec


def build(root: Path, change=None) -> Path:
    """The tree under root/results (folder names mean nothing) with searches/lr/search.json. ``change``
    (record -> record, or None: not written) edits the final runs' records."""
    results = root / "results"
    cells, n = [], 0

    def write(rec):
        nonlocal n
        if change is not None and rec.get("test_evaluated") is not False and "validation" not in rec:
            rec = change(rec)
            if rec is None:
                return
        folder = results / f"run{n:03d}"
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(rec))
        n += 1

    for (method, family, dataset), (space, objectives, chosen, default, tuned, hours, wall) in CELLS.items():
        trials = []
        for scale, value in zip(space, objectives, strict=False):
            write(_record(method, family, dataset, 42, scale, value, trial=True))
            trials.append(
                {
                    "run_key": _key(method, dataset, 42, scale, True),
                    "run_dir": str(results / _key(method, dataset, 42, scale, True)),
                    "settings": {KEY: scale},
                    "learning_rate": BASE_LR * scale,
                    "status": "success" if value is not None else "failed",
                    "objective": value,
                    "wall_time_s": wall / len(objectives),
                }
            )
        for seed, d, t in zip(SEEDS, default, tuned, strict=True):
            write(_record(method, family, dataset, seed, 1.0, d, trial=False, old=True))  # an older record
            if chosen != 1.0:
                write(_record(method, family, dataset, seed, chosen, t, trial=False))
        at_edge = [KEY] if chosen in (min(space), max(space)) else []
        cells.append(
            {
                "model": "tiny-random",
                "method": method,
                "method_family": family,
                "dataset": dataset,
                "space": {KEY: space},
                "default": {KEY: 1.0},
                "trials": trials,
                "chosen": {KEY: chosen},
                "chosen_objective": max(v for v in objectives if v is not None),
                "chosen_learning_rate": BASE_LR * chosen,
                "at_edge": at_edge,
                "budget_spent": {
                    "trials": len(objectives),
                    "trials_succeeded": sum(v is not None for v in objectives),
                    "wall_time_s": wall,
                    "device_hours": hours,
                    "device": "cpu",
                },
                "final": {
                    "tuned": [_key(method, dataset, s, chosen, False) for s in SEEDS],
                    "default": [_key(method, dataset, s, 1.0, False) for s in SEEDS],
                },
            }
        )
    search = {
        "search": "lr",
        "objective": "headline",
        "objective_split": "validation",
        "budget": 5,
        "max_validation_samples": VAL_CAP,
        "trial_seed": 42,
        "final_seeds": SEEDS,
        "git_commit": "abc",
        "updated_at": "2026-01-01T00:00:00",
        "cells": cells,
    }
    (results / "searches" / "lr").mkdir(parents=True)
    (results / "searches" / "lr" / "search.json").write_text(json.dumps(search))
    return results


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("search")
    results = build(root)
    out = root / "tables"
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main([str(results), "--out", str(out), "--no-plots"])
    return results, out, printed.getvalue()


def test_default_vs_tuned_by_hand(tree):
    _, out, _ = tree
    table = pd.read_csv(out / "search.csv").set_index(["method", "dataset"])
    expected = {  # default mean, std, tuned mean, std, difference (x100)
        ("lora", "glue/sst2"): (82.0, 2.0, 88.0, 2.0, 6.0),
        ("lora", "superglue/cb"): (75.0, 5.0, 75.0, 5.0, 0.0),
        ("prompt_tuning", "glue/sst2"): (52.0, 2.0, 70.0, 10.0, 18.0),
        ("ia3", "glue/sst2"): (80.0, 2.0, 84.0, 4.0, 4.0),
    }
    cols = ["default_mean", "default_std", "tuned_mean", "tuned_std", "difference"]
    for cell, values in expected.items():
        assert table.loc[cell, cols].tolist() == pytest.approx(values, abs=1e-9), cell
        assert (table.loc[cell, "default_n"], table.loc[cell, "tuned_n"]) == (3, 3)
    assert table["tuned_is_default"].to_dict() == {
        ("lora", "glue/sst2"): False,
        ("lora", "superglue/cb"): True,
        ("prompt_tuning", "glue/sst2"): False,
        ("ia3", "glue/sst2"): False,
    }
    assert table.loc[("prompt_tuning", "glue/sst2"), "chosen_learning_rate"] == pytest.approx(1e-2)
    assert (
        table["at_edge"].fillna("").to_dict()[("prompt_tuning", "glue/sst2")] == "learning_rate_scale (high)"
    )
    assert table["at_edge"].fillna("").tolist().count("") == 3


def test_markdown_cells(tree):
    _, out, printed = tree
    md = (out / "search.md").read_text()
    row = next(line for line in md.splitlines() if "| lora " in line and "glue/sst2" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:8] == [
        "tiny-random",
        "lora",
        "glue/sst2",
        "lr (headline)",
        "82.0 ±2.0 n=3",
        "88.0 ±2.0 n=3",
        "+6.0",
        "learning_rate_scale=3.162 (lr 0.000316, default 0.0001)",
    ]
    assert cells[8] == "0.1: 70.0, 0.3162: 75.0, 1: 80.0, **3.162: 85.0**, 10: 60.0"
    assert cells[9:] == ["n=200 cap", "", "5/5 (5 ok)", "0.5", "0.5"]  # 200 of SST-2's 872 held-out rows
    cb = next(line for line in md.splitlines() if "| lora " in line and "superglue/cb" in line)
    assert [c.strip() for c in cb.strip("|").split("|")][9] == "n=56"  # 56 held-out rows: not cut
    assert "learning_rate_scale=1 (lr 0.0001, default 0.0001) = default" in md
    assert "**1: 70.0**, 3.162: 65.0, 10: failed" in md
    assert "**0.3162: 82.0**" in md and "0.1: failed" in md
    pt = next(line for line in md.splitlines() if "| prompt_tuning " in line)
    assert "| edge: learning_rate_scale (high) |" in pt and "**100: 75.0**" in pt
    assert "best trial at the edge of the range: widen the space" in md
    assert f"search trials (validation only, no test score): {N_TRIALS}, shown in the search table" in md
    assert "## search\n" in printed and "## search_budget\n" in printed


def test_budget_per_method_flags_unequal_trials(tree):
    _, out, _ = tree
    budget = pd.read_csv(out / "search_budget.csv").set_index("method")
    assert budget.loc["lora", ["datasets", "trials", "trials_asked", "trials_succeeded"]].tolist() == [
        2,
        10,
        10,
        9,
    ]
    assert budget.loc["lora", "device_hours"] == pytest.approx(0.75)
    assert budget.loc["lora", "wall_hours"] == pytest.approx(0.75)  # (1800 + 900) s
    assert pd.isna(budget.loc["lora", "unequal"])  # nothing to flag
    assert budget.loc["prompt_tuning", "trials"] == 5  # a soft prompt gets the same budget per dataset
    assert budget.loc["prompt_tuning", "unequal"] == "searched 1 of 2 datasets"
    assert budget.loc["ia3", ["trials", "trials_succeeded"]].tolist() == [4, 3]
    assert budget.loc["ia3", "unequal"] == "4 of 5 trials on glue/sst2; searched 1 of 2 datasets"
    md = (out / "search_budget.md").read_text()
    assert (
        "| tiny-random | ia3           | lr       | 1          | 4/5 (3 ok)   | 0.4        | 0.4      |" in md
    )


def test_trials_are_neither_failures_nor_variants(tree):
    results, out, printed = tree
    runs = load_runs([results])
    assert runs.attrs["search_trials"] == N_TRIALS  # the failed trial without test_evaluated included
    assert len(runs) == N_FINAL  # old records without test_evaluated are test runs
    assert set(runs["status"]) == {"success"}
    assert not any("eval." in label for label in runs["label"])
    assert pd.read_csv(out / "failures.csv").empty
    assert len(pd.read_csv(out / "runs.csv")) == N_FINAL
    perf = (out / "performance.md").read_text()
    assert "failed" not in perf and "validation" not in perf
    assert "runs: success 21" in printed


def test_trials_without_search_json_are_counted(tmp_path, capsys):
    results = build(tmp_path)
    (results / "searches" / "lr" / "search.json").unlink()
    main([str(results), "--out", str(tmp_path / "t"), "--no-plots"])
    printed = capsys.readouterr().out
    assert f"search trials (validation only, no test score): {N_TRIALS}, shown in the search table" in printed
    assert "no search.json found" in printed
    assert not (tmp_path / "t" / "search.csv").exists()


def test_a_copied_search_json_counts_once(tmp_path):
    from multirun_analysis.search_tables import find_searches, read_cells

    results = build(tmp_path)
    shutil.copytree(results / "searches", results / "copy")
    cells = read_cells(find_searches([results, results]))
    assert len(cells) == 4


def _marked(rec: dict) -> dict | None:
    """Final runs: ia3's tuned seed 456 failed; lora's default runs on SST-2 capped at their 100 test rows
    with 10% invalid answers; prompt_tuning's default seed 123 never written (missing)."""
    method, dataset, seed = rec["method"], rec["dataset"], rec["seed"]
    scale = rec["config"]["trainer"]["learning_rate_scale"]
    if (method, seed, scale) == ("ia3", 456, 0.3162):
        return {
            **rec,
            "status": "failed",
            "error": "RuntimeError: boom",
            "headline_value": None,
            "metrics": {},
        }
    if (method, dataset, scale) == ("lora", "glue/sst2", 1.0):
        rec["config"]["dataset"]["max_eval_samples"] = 100
        rec["metrics"]["invalid_rate"] = 0.1
    if (method, seed, scale) == ("prompt_tuning", 123, 1.0):
        return None
    return rec


def test_final_runs_show_cap_invalid_rate_failed_and_missing(tmp_path):
    from multirun_analysis.search_tables import write_search_tables

    results = build(tmp_path, change=_marked)
    shown = {n: (md, h) for n, md, h in write_search_tables(load_runs([results]), [results], tmp_path / "t")}
    md, html = shown["search"]
    rows = {(r[1], r[2]): r for r in _all_rows(md)}  # (method, dataset)
    assert rows[("ia3", "glue/sst2")][4:6] == ["80.0 ±2.0 n=3", "82.0 ±2.8 n=2 +1 failed"]  # 0.80, 0.84
    assert rows[("lora", "glue/sst2")][4:6] == ["82.0 ±2.0 n=3 cap inv 10.0%", "88.0 ±2.0 n=3"]
    assert rows[("prompt_tuning", "glue/sst2")][4:6] == ["52.0 ±2.8 n=2 +1 missing", "70.0 ±10.0 n=3"]
    assert rows[("lora", "superglue/cb")][4:6] == ["75.0 ±5.0 n=3", "75.0 ±5.0 n=3"]
    assert "<td>82.0 ±2.8 n=2 +1 failed</td>" in html
    table = pd.read_csv(tmp_path / "t" / "search.csv").set_index(["method", "dataset"])
    ia3 = table.loc[("ia3", "glue/sst2")]
    assert ia3[["tuned_n", "tuned_not_scored", "tuned_not_scored_status"]].tolist() == [2, 1, "failed"]
    lora = table.loc[("lora", "glue/sst2")]
    assert lora["default_capped"] and lora["default_invalid_rate"] == pytest.approx(10.0)
    # the budget: each method's final runs once (lora on CB: tuned = default), with their marks
    budget = md_cells(shown["search_budget"][0])
    assert budget["ia3"][-1] == "n=5 +1 failed"  # 3 default + 2 tuned
    assert budget["lora"][-1] == "n=9 cap inv 10.0%"  # SST-2 3 + 3, CB 3; invalid 0.1 on 3 of them
    assert budget["prompt_tuning"][-1] == "n=5 +1 missing"
    for name, (text, fragment) in shown.items():  # the legend under both tables
        assert "cap: dataset.max_eval_samples cut the test split" in text, name
        assert "inv: the mean invalid-answer rate" in text and "+k failed, diverged" in text, name
        assert "+k failed, diverged" in fragment, name
    assert "val. rows: the validation rows the trials predicted (cap" in shown["search"][0]


def _all_rows(md: str) -> list[list[str]]:
    """The cells of a Markdown table's rows (header and rule left out)."""
    lines = [line for line in md.splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def md_cells(md: str) -> dict[str, list[str]]:
    """Rows of a Markdown table by their second cell (the method; one row per method)."""
    return {cells[1]: cells for cells in _all_rows(md)}


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex absent (Debian texlive-latex-base)")
def test_search_tex_compiles(tree, tmp_path):
    from multirun_analysis.search_tables import write_search_tables

    _, out, _ = tree
    names = sorted(p.name for p in out.glob("search*.tex"))
    assert names == ["search.tex", "search_budget.tex"]
    marked = build(tmp_path / "m", change=_marked)  # markers: cap, inv 10.0%, +1 failed, +1 missing
    write_search_tables(load_runs([marked]), [marked], tmp_path / "m" / "t")
    assert "cap inv 10.0\\%" in (tmp_path / "m" / "t" / "search.tex").read_text()
    for i, path in enumerate([*(out / n for n in names), *(tmp_path / "m" / "t" / n for n in names)]):
        mixed_tree.compile_tex([path], tmp_path, f"doc{i}")
    tex = (out / "search.tex").read_text()
    assert "\\textbf{3.162: 85.0}" in tex and "$\\pm$" in tex


def test_the_search_core_s_record_reads_the_same(tmp_path):
    """search.json as bench.search's own dataclasses write it gives the same table."""
    from bench.search import read_search, write_search
    from multirun_analysis.search_tables import find_searches, read_cells, search_table

    results = build(tmp_path)
    runs = load_runs([results])
    before = search_table(runs, read_cells(find_searches([results])))
    path = results / "searches" / "lr" / "search.json"
    write_search(path, read_search(path))
    after = search_table(runs, read_cells(find_searches([results])))
    pd.testing.assert_frame_equal(before, after)
    assert after["trials"].tolist() == [4, 5, 5, 5]
