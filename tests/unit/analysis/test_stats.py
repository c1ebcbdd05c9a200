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
    marks = tables.best_marks(runs, cells, answers={})[("m", "d")]
    # a beats b on 3 seeds: exact p = 2/8 = 0.25, not significant at 0.05; b and c tie: no second
    assert marks.best == ("m", "a") and marks.second is None
    assert marks.test.p == pytest.approx(0.25) and not marks.significant
    tie = runs.assign(headline_value=[0.5] * 9)
    marks = tables.best_marks(
        tie, tables.cell_stats(tie.assign(n_test=1, cap=1, invalid_rate=0), answers={}), {}
    )
    assert marks[("m", "d")].best is None and marks[("m", "d")].second is None


def test_ranks_ties_mark_neither():
    assert tables.ranks(pd.Series([3.0, 2.0, 1.0], index=list("abc"))) == ("a", "b")
    assert tables.ranks(pd.Series([3.0, 3.0, 1.0], index=list("abc"))) == (None, None)  # tie for best
    assert tables.ranks(pd.Series([3.0, 2.0, 2.0], index=list("abc"))) == ("a", None)  # tie for second
    assert tables.ranks(pd.Series([np.nan, 2.0], index=list("ab"))) == ("b", None)


# ---- per-example scores are the scorer's; the test is on the headline; bold needs the right sign ----


def _run(root, key, seed, method="lora", model="tiny-random", dataset=None, rows=(), **fields):
    """A record (bench.record's schema) of ``method`` with predictions ``rows``; ``dataset`` (a composed
    dataset block) defaults to glue/sst2 with accuracy as headline."""
    rec = mixed_tree.record(8, "generate", seed)
    rec["config"]["method"]["name"] = method
    rec["config"]["model"]["name"] = model
    if dataset is not None:
        rec["config"]["dataset"] = dataset
        rec.update(dataset=dataset["name"], headline_metric=dataset["headline_metric"])
    rec.update(method=method, model=model, run_key=key, n_test=len(rows), **fields)
    mixed_tree.write_run(root / key, rec, list(rows))


def _label_rows(correct, reference="positive"):
    """predictions.jsonl rows as generation writes them (id, prompt, generated, reference, parsed, valid)."""
    wrong = "negative" if reference == "positive" else "positive"
    rows = []
    for i, c in enumerate(correct):
        answer = reference if c else wrong
        rows.append(
            {"id": f"e{i}", "prompt": f"p{i}", "generated": answer, "reference": reference}
            | {"parsed": answer, "valid": True}
        )
    return rows


def test_per_example_scores_are_the_scorers():
    svamp = mixed_tree.composed_dataset("math/svamp")
    gold = "( 76.0 - 25.0 ) = 51 #### 51"  # a SVAMP target as the data pipeline writes it
    ours = stats.example_scorer(svamp, "math_exact_match", "peftbench")
    assert ours({"generated": gold, "reference": gold, "parsed": 51.0}) == 1.0  # parsed float, gold text
    assert ours({"generated": "so #### 50", "reference": gold, "parsed": 50.0}) == 0.0
    assert ours({"generated": "no number", "reference": gold, "parsed": None}) == 0.0
    paper = stats.example_scorer(svamp, "accuracy", "paper")  # the script: a self-consistent equation
    assert paper({"generated": "( 76.0 - 25.0 ) = 51", "reference": gold}) == 1.0
    assert paper({"generated": "( 76.0 - 25.0 ) = 50", "reference": gold}) == 0.0
    record = stats.example_scorer(mixed_tree.composed_dataset("superglue/record"), "record_f1", None)
    golds = ["Barack Obama", "Obama"]
    assert record({"generated": "Obama", "references": golds}) == 1.0
    assert record({"generated": "Barack", "references": golds}) == pytest.approx(2 / 3)  # P 1, R 1/2
    sst2 = mixed_tree.dataset_block()
    accuracy = stats.example_scorer(sst2, "accuracy", "peftbench")
    assert accuracy({"generated": None, "parsed": "positive", "reference": "positive"}) == 1.0  # score mode
    assert accuracy({"generated": "Negative.", "reference": "positive"}) == 0.0
    assert stats.example_scorer(sst2, "f1_macro", "peftbench") is None  # not a mean over examples
    assert stats.example_scorer({"name": "glue/sst2"}, "accuracy", "peftbench") is None  # no task type


def test_math_compare_tests_the_headline(tmp_path):
    # lora answers all 8 SVAMP rows right (math_exact_match 1.0), ia3 none, on 2 seeds: 16 pairs, all +1;
    # exact p = 2 / 2^16. Comparing the parsed float with the reference text saw 0.0 vs 0.0 (p = 1).
    svamp = mixed_tree.composed_dataset("math/svamp")
    gold = "( 76.0 - 25.0 ) = 51 #### 51"
    for method, answer, value in (("lora", gold, 1.0), ("ia3", "( 76.0 - 25.0 ) = 52 #### 52", 0.0)):
        rows = [
            {
                "id": f"e{i}",
                "prompt": "p",
                "generated": answer,
                "reference": gold,
                "parsed": 51.0,
                "valid": True,
            }
            for i in range(8)
        ]
        for seed in (1, 2):
            metrics = {"math_exact_match": value, "invalid_rate": 0.0}
            _run(
                tmp_path,
                f"{method}{seed}",
                seed,
                method,
                dataset=svamp,
                rows=rows,
                headline_value=value,
                metrics=metrics,
            )
    row = tables.compare_table(load_runs([tmp_path]), "lora", "ia3").iloc[0]
    assert (row["unit"], row["n_pairs"], row["diff"]) == ("examples", 16, pytest.approx(100.0))
    assert row["p"] == pytest.approx(2 / 2**16) and row["significant"]


def test_a_headline_that_is_no_mean_over_examples_is_tested_over_seeds(tmp_path):
    # f1_macro 0.9 (a) vs 0.5 (b) on seeds 1, 2, while a is right on 10 of 40 rows and b on 40: the
    # per-example test said a - b = -75; the headline's test is over seeds: diffs 0.4, 0.4, p = 2/4
    for method, f1, n_right in (("a", 0.9, 10), ("b", 0.5, 40)):
        for seed in (1, 2):
            _run(
                tmp_path,
                f"{method}{seed}",
                seed,
                method,
                dataset=mixed_tree.dataset_block(headline_metric="f1_macro"),
                rows=_label_rows([i < n_right for i in range(40)]),
                headline_value=f1,
                metrics={"f1_macro": f1, "accuracy": n_right / 40, "invalid_rate": 0.0},
            )
    row = tables.compare_table(load_runs([tmp_path]), "a", "b").iloc[0]
    assert (row["unit"], row["n_pairs"]) == ("seeds", 2)
    assert row["diff"] == pytest.approx(40.0) and row["p"] == pytest.approx(0.5)


def test_bold_needs_the_tested_difference_to_favour_the_best(tmp_path):
    # a: seeds 1, 2 right on rows 0-9 of 40 (0.25), seed 3 on all (1.0): mean 0.5. b: seeds 1, 2 right on
    # rows 0-15 (0.4): mean 0.4. a is best by mean; on the common seeds b wins rows 10-15 twice: 12
    # pairs, all -1: exact p = 2 / 2^12, significant, but for b: a is not bold.
    for seed, n_right in ((1, 10), (2, 10), (3, 40)):
        _run(
            tmp_path,
            f"a{seed}",
            seed,
            "a",
            rows=_label_rows([i < n_right for i in range(40)]),
            headline_value=n_right / 40,
            metrics={"accuracy": n_right / 40, "invalid_rate": 0.0},
        )
    for seed in (1, 2):
        _run(
            tmp_path,
            f"b{seed}",
            seed,
            "b",
            rows=_label_rows([i < 16 for i in range(40)]),
            headline_value=0.4,
            metrics={"accuracy": 0.4, "invalid_rate": 0.0},
        )
    runs = load_runs([tmp_path])
    marks = tables.best_marks(runs, tables.cell_stats(runs))[("tiny-random", "glue/sst2")]
    assert marks.best == ("tiny-random", "a") and marks.second == ("tiny-random", "b")
    assert (marks.test.unit, marks.test.n_pairs) == ("examples", 80)
    assert marks.test.diff == pytest.approx(-15.0) and marks.test.p == pytest.approx(2 / 2**12)
    assert marks.p_holm < stats.LEVEL and not marks.significant


def test_best_is_ranked_within_each_model_and_bold_when_significant(tmp_path):
    # m1: lora 20/20 right, ia3 and none 0/20; m2: lora 10/20, ia3 and none 0/20 (2 seeds each). Per
    # model, lora is best (ia3 and none tie: no second) and beats its runner-up on 40 and 20 pairs, all
    # +1: sampled p = 1/10001 each, Holm over the 2 (model, dataset) pairs: both bold. Ranked across
    # models, m2's lora was only the (underlined) second.
    from multirun_analysis.__main__ import main

    for model, lora in (("m1", 20), ("m2", 10)):
        for method, n_right in (("lora", lora), ("ia3", 0), ("none", 0)):
            for seed in (1, 2):
                value = n_right / 20
                _run(
                    tmp_path / "results",
                    f"{model}{method}{seed}",
                    seed,
                    method,
                    model,
                    rows=_label_rows([i < n_right for i in range(20)]),
                    headline_value=value,
                    metrics={"accuracy": value, "invalid_rate": 0.0},
                )
    main([str(tmp_path / "results"), "--out", str(tmp_path / "out"), "--no-plots"])
    perf = (tmp_path / "out" / "performance.md").read_text()
    assert "| m1      | lora     | 8K       | **100.0 ±0.0 [100.0, 100.0]† n=2×20 cap** |" in perf
    assert "| m2      | lora     | 8K       | **50.0 ±0.0 [" in perf
    assert "<u>" not in perf.split("\n\n")[0]  # ties for second: no second in either model
    assert "Holm over 2 (model, dataset) pair(s)" in perf


def test_two_level_bootstrap_resamples_each_draw_independently():
    # 2 seeds, each 20 examples half right (mean 0.5, example-mean variance 0.25 / 20 = 0.0125). Each draw
    # of a replicate: a seed, then its own resample, so Var(replicate) = (Var over seeds of the means (0)
    # + 0.0125) / 2 = 0.00625. Reusing one resample for a seed drawn twice gives 0.75 * 0.0125 = 0.009375.
    examples = [np.array([0.0, 1.0] * 10), np.array([1.0, 0.0] * 10)]
    means = stats.bootstrap_means([0.5, 0.5], examples, n=20_000)
    assert means.mean() == pytest.approx(0.5, abs=0.002)
    assert means.var() == pytest.approx(0.00625, rel=0.05)
    # one seed: the example bootstrap of that seed (variance 0.0125)
    assert stats.bootstrap_means([0.5], examples[:1], n=20_000).var() == pytest.approx(0.0125, rel=0.05)


def test_a_row_the_scorer_cannot_read_leaves_that_run_to_the_seed_level(tmp_path, caplog):
    # a classification config without label words: the scorer fails on the row; the run gets no
    # per-example scores (one warning), the analysis goes on
    broken = mixed_tree.dataset_block(label_names=[])
    mixed_tree.write_run(tmp_path / "r", mixed_tree.record(8, "generate", 1), _label_rows([1]))
    with caplog.at_level(logging.WARNING):
        answers = stats.load_answers(tmp_path / "r", stats.example_scorer(broken, "accuracy", "peftbench"))
    assert answers is None and "not scored per example" in caplog.text
