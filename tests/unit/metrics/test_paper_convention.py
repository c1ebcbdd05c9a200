"""PEFT-Bench's scoring script (bench.metrics.paper) on the edge cases, values worked out by hand:
empty input, every answer invalid, a single class, a capped subset. The script's flaws are kept on
purpose (metrics_paper reproduces the published numbers' scoring); each test names the one it shows."""

from __future__ import annotations

import math

import pytest

from bench.metrics import paper

SST2 = ["negative", "positive"]
CB = ["entailment", "contradiction", "neutral"]


def test_empty_input_is_nan_not_zero():
    assert math.isnan(paper.f1_second_label([], [], SST2))
    assert math.isnan(paper.macro_f1([], [], CB))
    assert math.isnan(paper.exact_match([], []))
    assert all(math.isnan(v) for v in paper.correlations([], []).values())
    assert math.isnan(paper.gsm8k([], [])["accuracy"]) and paper.gsm8k([], [])["format_errors"] == 0
    assert all(math.isnan(v) for v in paper.record([], []).values())


def test_every_answer_invalid_scores_zero():
    # two classes: each invalid answer is flipped to the other label -> no true positive of "positive"
    assert paper.f1_second_label(["maybe", "?"], ["positive", "negative"], SST2) == 0.0
    # three classes: each invalid answer becomes a wrong class -> no class has a true positive
    assert paper.macro_f1(["x", "y", "z"], CB, CB) == 0.0
    # GSM8K: no "####" in any answer -> all format errors, accuracy 0
    assert paper.gsm8k(["12", "13"], ["#### 12", "#### 13"]) == {"accuracy": 0.0, "format_errors": 2}


def test_stsb_every_answer_unreadable_is_a_constant_minus_one_and_no_correlation():
    # float() fails on every answer -> -1.0 each -> constant predictions -> Pearson/Spearman undefined
    values = paper.correlations(["five", "high", "n/a"], ["1.0", "2.0", "3.0"])
    assert math.isnan(values["pearson"]) and math.isnan(values["spearman"])


def test_single_class_subset_answered_perfectly():
    # binary F1 of the second label: all-positive subset answered perfectly -> 1.0
    assert paper.f1_second_label(["positive"] * 3, ["positive"] * 3, SST2) == 1.0
    # flaw: a capped subset with no positives answered perfectly scores 0.0 (F1 of an absent class)
    assert paper.f1_second_label(["negative"] * 3, ["negative"] * 3, SST2) == 0.0


def test_capped_subset_binary_f1_by_hand():
    # 4 positives, 2 negatives: answers TP, TP, FN (said negative), FN (invalid -> flipped to negative),
    # FP, TN -> precision 2/3, recall 2/4, F1 = 2*(2/3)*(1/2) / (2/3 + 1/2) = 4/7
    preds = ["positive", "positive", "negative", "dunno", "positive", "negative"]
    refs = ["positive"] * 4 + ["negative"] * 2
    assert paper.f1_second_label(preds, refs, SST2) == pytest.approx(4 / 7)


def test_svamp_scores_self_consistency_not_the_gold():
    # flaw: a consistent but wrong equation counts; the gold is only compared in gold_exact_equation
    out = paper.svamp(["( 3 + 4 ) = 7", "( 3 + 4 ) = 8", "foo"], ["( 3 + 4 ) = 7"] * 3)
    assert out == {"accuracy": pytest.approx(1 / 3), "format_errors": 1, "gold_exact_equation": 1}
    wrong_but_consistent = paper.svamp(["( 2 + 2 ) = 4"], ["( 3 + 4 ) = 7"])
    assert wrong_but_consistent["accuracy"] == 1.0 and wrong_but_consistent["gold_exact_equation"] == 0


def test_record_counts_a_query_once_per_gold():
    # query 1 (golds Paris, London) answered "paris": counted twice, right both times; query 2 wrong
    assert paper.record(["paris", "x"], [["Paris", "London"], ["Berlin"]]) == {
        "record_em": pytest.approx(2 / 3),
        "record_f1": pytest.approx(2 / 3),
    }
