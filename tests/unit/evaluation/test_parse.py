"""The answer parser on realistic model outputs (chat models, base models, thinking models)."""

import pytest

from bench.evaluation.parse import parse_label, strip_think

NLI2 = ["entailment", "not_entailment"]
NLI3 = ["entailment", "neutral", "contradiction"]
SST2 = ["negative", "positive"]
BOOL = ["False", "True"]
ABCD = ["A", "B", "C", "D"]
AB = ["A", "B"]


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        # the cases
        ("Answer: C", ABCD, "C"),  # was A (a prefix of "Answer")
        ("Correct answer: B", ABCD, "B"),  # was C
        ("Definitely A", ABCD, None),  # was D
        ("neutrality", NLI3, None),  # was neutral
        ("entailments", NLI2, None),  # was entailment
        ("Answer:", ABCD, None),  # a chatty model cut at 2 tokens: was A
        ("Certainly!", ABCD, None),  # was C
        ("A)", ABCD, "A"),
        ("(B)", ABCD, "B"),
        ("Positive.", SST2, "positive"),
        ("not entailment", NLI2, "not_entailment"),
        # whole answers
        ("positive", SST2, "positive"),
        ("  NEGATIVE \n", SST2, "negative"),
        ("**Positive**", SST2, "positive"),
        ('"negative"', SST2, "negative"),
        ("True", BOOL, "True"),
        ("false.", BOOL, "False"),
        ("not_entailment", NLI2, "not_entailment"),
        ("Not-Entailment", NLI2, "not_entailment"),
        ("d", ABCD, "D"),
        # a label as the leading word, then more text
        ("positive sentiment", SST2, "positive"),
        ("Negative, because the reviewer hated it.", SST2, "negative"),
        ("entailment\n\nThe premise states that...", NLI3, "entailment"),
        ("not_entailment is my answer", NLI2, "not_entailment"),  # the longer label wins
        ("Contradiction: the two sentences disagree", NLI3, "contradiction"),
        ("B. The cat sat on the mat", ABCD, "B"),
        ("C: 42 apples", ABCD, "C"),
        ("(A) Paris", ABCD, "A"),
        ("[D]", ABCD, "D"),
        ("True - the passage says so", BOOL, "True"),
        # lead-ins
        ("The answer is B.", ABCD, "B"),
        ("The correct answer is (D).", ABCD, "D"),
        ("Final answer: A", ABCD, "A"),
        ("**Answer:** C", ABCD, "C"),
        ("Option B", AB, "B"),
        ("Sentiment: Positive", SST2, "positive"),
        ("Label: neutral", NLI3, "neutral"),
        ("Answer - not entailment", NLI2, "not_entailment"),
        # prefixes of longer words, labels not in the lead, chatter: invalid
        ("Neutrally speaking, yes", NLI3, None),
        ("Entailed", NLI2, None),
        ("Positively glowing", SST2, None),
        ("Trueish", BOOL, None),
        ("Falsehood", BOOL, None),
        ("Absolutely, B", AB, None),
        ("Based on the passage, C", ABCD, None),
        ("I think it is positive", SST2, None),
        ("The sentiment of this review", SST2, None),
        ("Both A and B are plausible", AB, None),
        ("Dear user", ABCD, None),
        ("Certainly! Here is", ABCD, None),
        ("Sure", SST2, None),
        ("", SST2, None),
        ("   ", ABCD, None),
        ("positive-leaning", SST2, None),  # a compound word, not the label
        # think blocks, for every answer
        ("<think>hmm, maybe entailment</think> not_entailment", NLI2, "not_entailment"),
        ("<think>A seems right but</think>\n\nAnswer: B", ABCD, "B"),
        ("The premise...</think>\n\ncontradiction", NLI3, "contradiction"),  # template opened the block
        ("<think>positive or negative? The review is", SST2, None),  # ran out while thinking
        ("<THINK>x</THINK>True", BOOL, "True"),
    ],
)
def test_parse_label(text, labels, expected):
    assert parse_label(text, labels) == expected


def test_at_least_40_realistic_outputs():
    assert len(test_parse_label.pytestmark[0].args[1]) >= 40


def test_parse_keeps_label_spelling():
    assert parse_label("POSITIVE", ["Negative", "Positive"]) == "Positive"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think> 3.5", "3.5"),
        ("<think>a</think>x<think>b</think>y", "xy"),
        ("reasoning</think>\n\n#### 4", "#### 4"),
        ("<think>never closed 7", ""),
        (None, ""),
        ("  plain  ", "plain"),
    ],
)
def test_strip_think(text, expected):
    assert strip_think(text) == expected
