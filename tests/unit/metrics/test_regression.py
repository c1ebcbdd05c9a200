import math

import pytest

from bench.metrics import compute_metrics
from bench.metrics.regression import parse_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3.8", 3.8), (" 4 ", 4.0), ("2.5 out of 5", 2.5), ("-1", -1.0), (".5", 0.5), ("3.", 3.0)],
)
def test_parse_number_reads_the_leading_number(text, expected):
    assert parse_number(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", [None, "", "score: 3", "n/a"])
def test_parse_number_none_without_a_leading_number(text):
    assert parse_number(text) is None


def test_parse_number_reads_number_words():
    assert parse_number("Five.") == 5.0 and parse_number("zero") == 0.0 and parse_number("fives") is None


def test_issue_stsb_one_five_is_read_not_dropped():
    # the issue's case: answers 1, 2, 3, 4, "five" for references 1..5: a perfect answer (PEFT-Bench: -0.164)
    got = compute_metrics(["pearson", "spearman"], ["1", "2", "3", "4", "five"], list("12345"), labels=[])
    assert got == pytest.approx({"pearson": 1.0, "spearman": 1.0})


def test_unparseable_answer_is_the_farthest_end_of_the_range():
    # "n/a" for reference 5: scored as 1 (the references' range is 1..5). x = 1,2,3,4,1; y = 1..5:
    # dx = -1.2,-0.2,0.8,1.8,-1.2; dy = -2..2: sum dx*dy = 2.0, sum dx^2 = 6.8, sum dy^2 = 10 -> 2/sqrt(68)
    got = compute_metrics(["pearson"], ["1", "2", "3", "4", "n/a"], list("12345"), labels=[])["pearson"]
    assert got == pytest.approx(2 / math.sqrt(68))


def test_two_numbers_out_of_eight_is_not_a_perfect_correlation():
    # was 1.0 from the 2 readable answers; the 6 unreadable ones now count, each at its worst
    refs = ["0", "1", "2", "3", "4", "5", "1", "4"]
    preds = ["0", "5", None, "", "n/a", "?", "x", "y"]
    assert compute_metrics(["pearson"], preds, refs, labels=[])["pearson"] < 0


def test_spearman_by_hand():
    # ranks x=1,2,3 vs y=2,1,3: sum d^2 = 2 -> rho = 1 - 6*2/(3*(9-1)) = 0.5
    assert compute_metrics(["spearman"], ["1", "2", "3"], ["2", "1", "3"], labels=[])[
        "spearman"
    ] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("preds", "refs"),
    [
        (["1"], ["1"]),  # one row
        (["3", "3", "3"], ["1", "2", "3"]),  # constant predictions
        (["1", "2", "3"], ["2", "2", "2"]),  # constant references
        ([None, None], ["2", "2"]),  # all invalid, constant references
    ],
)
@pytest.mark.parametrize("name", ["pearson", "spearman"])
def test_nan_when_correlation_is_undefined(name, preds, refs):
    assert math.isnan(compute_metrics([name], preds, refs, labels=[])[name])


def test_all_invalid_is_anti_correlated():
    # every answer at the far end of its reference: 1 -> 3, 2 -> 3 (a tie goes high), 3 -> 1
    assert compute_metrics(["pearson"], [None] * 3, ["1", "2", "3"], labels=[])["pearson"] < 0
