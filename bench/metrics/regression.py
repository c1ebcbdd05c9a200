"""Regression metrics for STS-B, peftbench's convention (scipy does the arithmetic).

An answer is read as its leading number, or a leading number word ("five" -> 5). An unparseable answer is
invalid (``invalid_rate``) and enters the correlation as the end of the references' range farthest from
its own reference (the worst answer in range), so it is never dropped: a correlation over 2 of 8 answers
is never reported. PEFT-Bench's script puts -1.0 there instead (bench.metrics.paper).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from bench.metrics.registry import METRICS

_LEADING_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_NUMBER_WORDS = {
    w: float(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())
}
_LEADING_WORD = re.compile(r"[a-z]+")


def parse_number(text: str | None) -> float | None:
    """The number at the start of the stripped text (``"2.5 out of 5"`` -> 2.5, ``"Five."`` -> 5.0);
    None if there is none."""
    if text is None:
        return None
    text = text.strip()
    match = _LEADING_NUMBER.match(text)
    if match:
        return float(match.group())
    word = _LEADING_WORD.match(text.lower())
    return _NUMBER_WORDS.get(word.group()) if word else None


def scored_values(
    predictions: Sequence[str | None], references: Sequence[str]
) -> tuple[list[float], list[float]]:
    """(predicted values, reference values) for every row; an unparseable prediction becomes the end of the
    references' range farthest from its reference."""
    ys = [float(ref) for ref in references]
    low, high = (min(ys), max(ys)) if ys else (0.0, 0.0)
    xs = []
    for pred, y in zip(predictions, ys, strict=True):
        value = parse_number(pred)
        xs.append(value if value is not None else (low if high - y < y - low else high))
    return xs, ys


def _correlation(predictions, references, method) -> float:
    xs, ys = scored_values(predictions, references)
    # Correlation is undefined for fewer than 2 points or a constant side; say so with NaN, not 0.
    if len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return math.nan
    return float(method(xs, ys).statistic)


@METRICS.register("pearson")
def pearson(predictions, references, *, labels=None) -> float:
    """Pearson's r between parsed predictions and numeric references, over every row (an unparseable answer
    scored as the farthest end of the references' range).

    NaN if fewer than 2 rows or either side is constant.
    """
    from scipy.stats import pearsonr

    return _correlation(predictions, references, pearsonr)


@METRICS.register("spearman")
def spearman(predictions, references, *, labels=None) -> float:
    """Spearman's rho between parsed predictions and numeric references, over every row (an unparseable answer
    scored as the farthest end of the references' range).

    NaN if fewer than 2 rows or either side is constant.
    """
    from scipy.stats import spearmanr

    return _correlation(predictions, references, spearmanr)
