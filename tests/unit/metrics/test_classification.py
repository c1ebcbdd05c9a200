"""peftbench's classification convention on literal inputs worked out by hand."""

import math
import random

import pytest

from bench.metrics import compute_metrics
from bench.metrics.classification import f1

LABELS = ["neg", "pos"]
REFS = ["pos", "pos", "neg", "neg", "pos"]
PREDS = ["pos", "neg", "neg", None, "pos"]  # one invalid answer (reference neg): read as the wrong label pos
# so the effective predictions are pos, neg, neg, pos, pos:
# pos: tp=2 fp=1 fn=1 -> 4/6 = 2/3;  neg: tp=1 fp=1 fn=1 -> 2/4 = 1/2


def test_accuracy_counts_invalid_as_wrong():
    assert compute_metrics(["accuracy"], PREDS, REFS, labels=LABELS) == {"accuracy": pytest.approx(3 / 5)}


def test_f1_macro_by_hand():
    assert compute_metrics(["f1_macro"], PREDS, REFS, labels=LABELS)["f1_macro"] == pytest.approx(7 / 12)


def test_f1_micro_by_hand():
    # pooled: tp=3, fp=2, fn=2 -> 6/10
    assert compute_metrics(["f1_micro"], PREDS, REFS, labels=LABELS)["f1_micro"] == pytest.approx(0.6)


def test_f1_binary_needs_pos_label():
    assert f1(PREDS, REFS, labels=LABELS, average="binary", pos_label="pos") == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="pos_label"):
        f1(PREDS, REFS, labels=LABELS, average="binary")


def test_f1_binary_through_the_registry_gets_pos_label():
    assert compute_metrics(["f1_binary"], PREDS, REFS, labels=LABELS, pos_label="pos")[
        "f1_binary"
    ] == pytest.approx(2 / 3)
    assert compute_metrics(
        ["f1_binary", "accuracy"], PREDS, REFS, labels=LABELS, pos_label="neg"
    ) == pytest.approx({"f1_binary": 0.5, "accuracy": 0.6})


def test_invalid_rate():
    assert compute_metrics(["invalid_rate"], PREDS, REFS, labels=LABELS)["invalid_rate"] == pytest.approx(0.2)


@pytest.mark.parametrize("name", ["accuracy", "f1_macro", "f1_micro", "mcc", "invalid_rate"])
def test_empty_is_nan_not_a_sentinel(name):
    assert math.isnan(compute_metrics([name], [], [], labels=LABELS)[name])


def test_mcc_by_hand():
    # binary, no invalid: preds pos,neg,neg,neg,pos -> TP=2 FN=1 TN=2 FP=0
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 4 / sqrt(2*3*2*3) = 2/3
    preds = ["pos", "neg", "neg", "neg", "pos"]
    assert compute_metrics(["mcc"], preds, REFS, labels=LABELS)["mcc"] == pytest.approx(2 / 3)


def test_mcc_reads_invalid_as_the_other_label():
    # effective preds pos,neg,neg,pos,pos: TP=2 FN=1 TN=1 FP=1 -> (2 - 1) / sqrt(3*3*2*2) = 1/6
    assert compute_metrics(["mcc"], PREDS, REFS, labels=LABELS)["mcc"] == pytest.approx(1 / 6)


def test_issue_sst2_example():
    # 8 answers: 3 positive (2 right, 1 invalid), 5 negative (4 right, 1 answered positive).
    # The old rule (invalid = a class of its own) gave 0.778: pos 4/6, neg 8/9. Read as a wrong answer:
    # pos: tp=2 fp=1 fn=1 -> 2/3; neg: tp=4 fp=1 fn=1 -> 8/10; macro 0.733 (PEFT-Bench: 0.667, see test_paper)
    refs = ["positive"] * 3 + ["negative"] * 5
    preds = ["positive", "positive", None, "positive", "negative", "negative", "negative", "negative"]
    value = compute_metrics(["f1_macro"], preds, refs, labels=["negative", "positive"])["f1_macro"]
    assert value == pytest.approx((2 / 3 + 0.8) / 2)
    assert round(value, 3) == 0.733


def test_issue_invalid_scored_better_than_wrong_no_more():
    # the issue's case: replacing a wrong answer by an invalid one raised macro-F1; now it is the same
    refs = ["positive"] * 3 + ["negative"] * 5
    wrong = ["positive", "positive", "negative", "positive", "negative", "negative", "negative", "negative"]
    invalid = ["positive", "positive", None, "positive", "negative", "negative", "negative", "negative"]
    labels = ["negative", "positive"]
    for name in ("f1_macro", "f1_micro", "accuracy", "mcc"):
        assert compute_metrics([name], invalid, refs, labels=labels)[name] == pytest.approx(
            compute_metrics([name], wrong, refs, labels=labels)[name]
        )


CB = ["entailment", "contradiction", "neutral"]


def test_invalid_never_beats_any_wrong_label():
    # 150 random 5-row CB sets: swapping a wrong answer for an invalid one never raises a score
    rng = random.Random(0)
    for _ in range(150):
        refs = [rng.choice(CB) for _ in range(5)]
        preds = [rng.choice(CB) for _ in range(5)]
        wrong = [i for i in range(5) if preds[i] != refs[i]]
        if not wrong:
            continue
        i = rng.choice(wrong)
        with_invalid = [*preds[:i], None, *preds[i + 1 :]]
        for name in ("f1_macro", "f1_micro", "accuracy"):
            got = compute_metrics([name], with_invalid, refs, labels=CB)[name]
            assert got <= compute_metrics([name], preds, refs, labels=CB)[name] + 1e-12


def test_cb_one_invalid_by_hand():
    # refs e e c c n, answers e e ? c n. The invalid (ref c) is a false positive of e and n:
    # e: tp=2 fp=1 -> 4/5; c: tp=1 fn=1 -> 2/3; n: tp=1 fp=1 -> 2/3; macro = (0.8 + 2/3 + 2/3) / 3 = 0.711
    # (the old rule gave 0.889, PEFT-Bench's script 0.822: see test_paper)
    refs = ["entailment", "entailment", "contradiction", "contradiction", "neutral"]
    preds = ["entailment", "entailment", None, "contradiction", "neutral"]
    value = compute_metrics(["f1_macro"], preds, refs, labels=CB)["f1_macro"]
    assert value == pytest.approx((0.8 + 4 / 3) / 3)


def test_capped_subset_without_negatives_answered_perfectly_scores_one():
    refs = ["positive"] * 4
    assert compute_metrics(["f1_macro", "f1_micro"], refs, refs, labels=["negative", "positive"]) == {
        "f1_macro": 1.0,
        "f1_micro": 1.0,
    }  # was 0.5: the absent label counted as 0


def test_single_class_subset_with_a_wrong_answer():
    # refs all positive, one answered negative: pos tp=3 fn=1 -> 6/7; neg occurs (predicted) with f1 0
    refs = ["positive"] * 4
    preds = ["positive", "positive", "positive", "negative"]
    value = compute_metrics(["f1_macro"], preds, refs, labels=["negative", "positive"])["f1_macro"]
    assert value == pytest.approx(3 / 7)


def test_all_invalid_scores_zero():
    refs = ["entailment", "neutral", "contradiction"]
    got = compute_metrics(["accuracy", "f1_macro", "f1_micro", "invalid_rate"], [None] * 3, refs, labels=CB)
    assert got == {"accuracy": 0.0, "f1_macro": 0.0, "f1_micro": 0.0, "invalid_rate": 1.0}


def test_a_reference_outside_the_labels_is_a_clear_error():
    with pytest.raises(ValueError, match="dataset.label_names"):
        compute_metrics(["f1_macro"], ["neg"], ["maybe"], labels=LABELS)
