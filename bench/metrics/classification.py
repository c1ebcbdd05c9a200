"""Classification metrics, peftbench's convention (scikit-learn does the arithmetic).

Invalid answers (None: the answer named no label) never score better than a wrong answer: an invalid
answer is a false negative of its reference *and a false positive of every other label*, so it costs at
least what any wrong label would (for two labels it is exactly the other label, as in PEFT-Bench's script).
F1 averages over the dataset's labels that occur in the references or the predictions: a label absent
from both (a capped subset without negatives) is not scored as 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.metrics.registry import METRICS


def _indicators(predictions: Sequence[str | None], references: Sequence[str], labels: Sequence[str]):
    """One-hot references and predictions over ``labels``; an invalid answer marks every label but its
    reference. Returns (y_true, y_pred, columns): columns = the labels that occur on either side."""
    import numpy as np

    labels = list(labels)
    unknown = sorted({r for r in references if r not in labels})
    if unknown:
        raise ValueError(f"references {unknown} are not among the labels {labels}: check dataset.label_names")
    y_true = np.array([[r == label for label in labels] for r in references], dtype=int).reshape(
        -1, len(labels)
    )
    y_pred = np.array(
        [
            [(p == label) if p is not None else (r != label) for label in labels]
            for p, r in zip(predictions, references, strict=True)
        ],
        dtype=int,
    ).reshape(-1, len(labels))
    columns = [i for i in range(len(labels)) if y_true[:, i].any() or y_pred[:, i].any()]
    return y_true, y_pred, columns


@METRICS.register("accuracy")
def accuracy(predictions, references, *, labels=None) -> float:
    """Share of answers equal to their reference (an invalid answer is wrong)."""
    if not references:
        return math.nan
    return sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


def f1(predictions, references, *, labels, average: str = "macro", pos_label: str | None = None) -> float:
    """F1 over the labels that occur (see the module docstring for invalid answers).

    ``average``: macro (unweighted mean over the labels that occur), micro (pooled counts), or binary: the
    F1 of ``pos_label`` alone.
    """
    from sklearn.metrics import f1_score

    if not references:
        return math.nan
    y_true, y_pred, columns = _indicators(predictions, references, labels)
    if average == "binary":
        if pos_label is None:
            raise ValueError("f1 with average='binary' needs pos_label")
        columns = [list(labels).index(pos_label)]
    elif average not in ("macro", "micro"):
        raise ValueError(f"f1: average must be macro, micro or binary, got {average!r}")
    if len(columns) == 1:  # scikit-learn reads one indicator column as a 0/1 task and averages both
        (c,) = columns
        return float(f1_score(y_true[:, c], y_pred[:, c], average="binary", pos_label=1, zero_division=0))
    sk_average = "macro" if average == "binary" else average
    return float(f1_score(y_true[:, columns], y_pred[:, columns], average=sk_average, zero_division=0))


@METRICS.register("f1_macro")
def f1_macro(predictions, references, *, labels) -> float:
    return f1(predictions, references, labels=labels, average="macro")


@METRICS.register("f1_binary")
def f1_binary(predictions, references, *, labels, pos_label: str | None = None) -> float:
    """F1 of ``pos_label`` (set ``dataset.pos_label``), e.g. the positive class of SST-2."""
    return f1(predictions, references, labels=labels, average="binary", pos_label=pos_label)


@METRICS.register("f1_micro")
def f1_micro(predictions, references, *, labels) -> float:
    return f1(predictions, references, labels=labels, average="micro")


@METRICS.register("invalid_rate")
def invalid_rate(predictions, references, *, labels=None) -> float:
    """Share of answers that named no label."""
    if not predictions:
        return math.nan
    return sum(p is None for p in predictions) / len(predictions)


@METRICS.register("mcc")
def mcc(predictions, references, *, labels) -> float:
    """Matthews correlation; an invalid answer is read as a wrong label (the first label that is not its
    reference: for two labels the other one). Where MCC is undefined (a constant side), 0.0 (scikit-learn).
    """
    from sklearn.metrics import matthews_corrcoef

    if not references:
        return math.nan
    labels = list(labels)
    wrong = [
        p if p is not None else next(label for label in labels if label != r)
        for p, r in zip(predictions, references, strict=True)
    ]
    return float(matthews_corrcoef(list(references), wrong))
