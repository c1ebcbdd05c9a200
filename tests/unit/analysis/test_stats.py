"""Paired tests, Holm, bootstrap CIs and the marks they decide: values worked out by hand."""

from __future__ import annotations

import json
import logging

import mixed_tree  # tests/unit/analysis is on sys.path (pytest prepend mode)
import numpy as np
import pandas as pd
import pytest

from multirun_analysis import stats, tables
from multirun_analysis.records import load_runs


@pytest.fixture
def tree(tmp_path):
    return mixed_tree.build(tmp_path)


def test_exact_permutation_p_by_hand():
    # 4 wins, 1 loss, 2 ties: the ties drop out; of the 2^5 = 32 sign patterns, |sum| >= 3 for
    # k = 0, 1, 4, 5 positive signs: 1 + 5 + 5 + 1 = 12 -> p = 12/32
    assert stats.paired_permutation_p([1, 1, 1, 1, -1, 0, 0]) == pytest.approx(12 / 32)
    assert stats.paired_permutation_p([1, 1, 1]) == pytest.approx(2 / 8)
    assert stats.paired_permutation_p([0, 0]) == 1.0
    assert stats.paired_permutation_p([0.5, -0.5]) == 1.0


def test_random_permutation_p_is_seeded_and_close_to_exact():
    d = np.array([1.0] * 14 + [-1.0] * 6)  # 20 pairs: sampled; exact two-sided binomial p = 0.1153
    p1, p2 = stats.paired_permutation_p(d), stats.paired_permutation_p(d)
    assert p1 == p2 and p1 == pytest.approx(0.1153, abs=0.01)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(stats.holm([np.nan, 0.2])[0]) and stats.holm([np.nan, 0.2])[1] == pytest.approx(0.2)


def test_bootstrap_ci_deterministic_and_two_level_wider():
    values = [0.75, 0.875]
    examples = [np.array(mixed_tree.CORRECT[(8, "generate", s)], float) for s in (1, 2)]
    seeds_only = stats.bootstrap_ci(values)
    both = stats.bootstrap_ci(values, examples)
    assert seeds_only == stats.bootstrap_ci(values)  # seeded
    assert seeds_only == pytest.approx((0.75, 0.875))  # two seeds: their min and max
    assert both[0] < seeds_only[0] and both[1] > seeds_only[1] - 1e-12
    assert np.isnan(stats.bootstrap_ci([0.5])[0])  # one seed, no examples: no interval


def test_cells_show_mean_std_n_ci_and_failed(tree):
    runs = load_runs([tree])
    cells = tables.cell_stats(runs)
    r8 = cells.loc[("tiny-random", "lora [eval.mode=generate, r=8]", "glue/sst2")]
    assert r8["mean"] == pytest.approx(81.25) and r8["std"] == pytest.approx(np.std([75, 87.5], ddof=1))
    assert r8["n_seeds"] == 2 and r8["n_test"] == 8 and r8["cap"] == 8
    assert r8["ci_kind"] == "seeds+examples" and r8["ci_low"] < 75 and r8["ci_high"] > 87.5
    assert r8["not_scored"] == 1 and r8["not_scored_status"] == "failed"  # the failed seed 3
    score = cells.loc[("tiny-random", "lora [eval.mode=score, r=16]", "glue/sst2")]
    assert score["n_seeds"] == 1 and score["ci_kind"] == "seeds+examples"  # one seed: examples only


def test_paired_by_ids_by_hand(tree):
    runs = load_runs([tree])
    table = tables.compare_table(runs, "lora [eval.mode=generate, r=16]", "lora [eval.mode=generate, r=8]")
    row = table.iloc[0]
    # seed 1: r=16 right on examples 6 and 7 where r=8 is wrong; seed 2: the same answers. 2 of 16
    # pairs differ, both +1: exact p = 2 / 2^2
    assert (row["unit"], row["n_seeds"], row["n_pairs"]) == ("examples", 2, 16)
    assert row["diff"] == pytest.approx(12.5) and row["p"] == pytest.approx(0.5)
    assert row["p_holm"] == pytest.approx(0.5) and not row["significant"]


def test_pairing_by_ids_ignores_row_order_and_falls_back_with_warning(tmp_path, caplog):
    a = stats.Answers(["x", "y", "z"], np.array([1.0, 0.0, 1.0]))
    b = stats.Answers(["z", "x"], np.array([0.0, 1.0]))
    xa, xb = stats.align(a, b)
    assert xa.tolist() == [1.0, 1.0] and xb.tolist() == [1.0, 0.0]  # x with x, z with z; y unmatched
    with caplog.at_level(logging.WARNING):
        xa, xb = stats.align(stats.Answers(None, np.array([1.0, 0.0])), b, "t")
    assert xa.tolist() == [1.0, 0.0] and "no 'id'" in caplog.text


def test_without_predictions_the_seeds_are_paired(tmp_path):
    rows = []
    for i, (method, value) in enumerate(
        [("a", 0.9), ("a", 0.8), ("a", 0.7), ("b", 0.5), ("b", 0.6), ("b", 0.7)]
    ):
        rec = {
            "status": "success",
            "run_key": f"k{i}",
            "model": "m",
            "method": method,
            "dataset": "d",
            "seed": i % 3,
            "headline_value": value,
            "metrics": {},
        }
        (tmp_path / f"r{i}").mkdir()
        (tmp_path / f"r{i}" / "result.json").write_text(json.dumps(rec))
        rows.append(rec)
    table = tables.compare_table(load_runs([tmp_path]), "a", "b")
    row = table.iloc[0]
    # diffs 0.4, 0.2, 0.0: the zero drops out; 2 pairs, both positive: p = 2/4
    assert row["unit"] == "seeds" and row["diff"] == pytest.approx(20.0) and row["p"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no variant 'c'"):
        tables.compare_table(load_runs([tmp_path]), "c", "b")


def test_best_is_bold_only_when_significant_and_ties_mark_nothing():
    runs = pd.DataFrame(
        {
            "model": "m",
            "label": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "dataset": "d",
            "seed": [1, 2, 3] * 3,
            "headline_value": [0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
            "status": "success",
            "path": [f"p{i}" for i in range(9)],
        }
    )
    cells = tables.cell_stats(runs.assign(n_test=np.nan, cap=np.nan, invalid_rate=np.nan), answers={})
    marks = tables.best_marks(runs, cells, answers={})["d"]
    # a beats b on 3 seeds: exact p = 2/8 = 0.25, not significant at 0.05; b and c tie: no second
    assert marks.best == ("m", "a") and marks.second is None
    assert marks.test.p == pytest.approx(0.25) and not marks.significant
    tie = runs.assign(headline_value=[0.5] * 9)
    marks = tables.best_marks(
        tie, tables.cell_stats(tie.assign(n_test=1, cap=1, invalid_rate=0), answers={}), {}
    )
    assert marks["d"].best is None and marks["d"].second is None


def test_ranks_ties_mark_neither():
    assert tables.ranks(pd.Series([3.0, 2.0, 1.0], index=list("abc"))) == ("a", "b")
    assert tables.ranks(pd.Series([3.0, 3.0, 1.0], index=list("abc"))) == (None, None)  # tie for best
    assert tables.ranks(pd.Series([3.0, 2.0, 2.0], index=list("abc"))) == ("a", None)  # tie for second
    assert tables.ranks(pd.Series([np.nan, 2.0], index=list("ab"))) == ("b", None)
