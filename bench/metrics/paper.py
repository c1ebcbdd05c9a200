"""PEFT-Bench's scoring script reproduced, flaws included (``metrics_paper`` in result.json).

The script is kinit-sk/PEFT-Factory ``scripts/peftbench/compute_metrics.py``. Every answer and reference
is read as the text after the last ``"</think>\\n\\n"``, stripped and lower-cased; then, by task:

- classification and multiple choice with two labels: ``f1`` = binary F1 of the SECOND label (e.g.
  positive, not_entailment, B); an answer that is not exactly a label becomes the other label (wrong).
- more labels: ``f1_macro`` over the labels that occur; an answer that is not a label becomes the second
  label, or the first when the reference is the second (always wrong).
- both: ``exact_match`` on the raw strings cut to 16 characters (numpy ``<U16``).
- regression (STS-B): ``pearson``/``spearman`` with ``float()`` of each answer, -1.0 where it fails.
- ReCoRD: HF evaluate's ``super_glue/record`` (official ReCoRD script) over rows duplicated once per
  gold answer, so a query weighs as many times as it has golds.
- GSM8K-style math: ``accuracy`` needs ``####`` in the answer, then ``float()`` of what follows (commas
  and % dropped), |pred - gold| < 1e-6; ``format_errors`` counts the rest.
- SVAMP: ``accuracy`` = share of answers ``( expr ) = n`` whose left side evaluates to n; the gold is
  never compared (``gold_exact_equation`` is, with the script's no-op whitespace removal).
- code: CodeBLEU (Python, equal weights) on lower-cased code.

``invalid_rate`` is the share of answers the script could not read (not a label; not a float; no
``####``; not an equation; empty code).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Sequence

THINK_SPLIT = "</think>\n\n"
EM_WIDTH = 16  # the script compares numpy "<U16" arrays: strings are cut to 16 characters
STSB_DEFAULT = -1.0


def read(text: str | None) -> str:
    """The script's reading of an answer or reference: after the last ``</think>\\n\\n``, stripped, lower."""
    return ("" if text is None else str(text)).split(THINK_SPLIT)[-1].strip().lower()


def exact_match(preds: Sequence[str], targets: Sequence[str]) -> float:
    if not targets:
        return math.nan
    return sum(p[:EM_WIDTH] == t[:EM_WIDTH] for p, t in zip(preds, targets, strict=True)) / len(targets)


def _flip_invalid(preds: Sequence[str], targets: Sequence[str], labels: Sequence[str]) -> list[str]:
    """``binary_reverse``: an answer outside ``labels`` becomes labels[0] if its target is labels[1],
    else labels[1]. Only the first 16 characters of an answer are compared."""
    out = []
    for p, t in zip(preds, targets, strict=True):
        p = p[:EM_WIDTH]
        out.append(p if p in labels else (labels[0] if t[:EM_WIDTH] == labels[1] else labels[1]))
    return out


def _flipped_f1(preds: Sequence[str], targets: Sequence[str], labels: Sequence[str], average: str) -> float:
    """sklearn's F1 over label ids after the script's flipping of invalid answers; NaN for no rows."""
    from sklearn.metrics import f1_score

    if not targets:
        return math.nan
    labels = [label.lower() for label in labels]
    flipped = _flip_invalid(preds, targets, labels)
    ids = {label: i for i, label in enumerate(labels)}
    return float(f1_score([ids[t[:EM_WIDTH]] for t in targets], [ids[p] for p in flipped], average=average))


def f1_second_label(preds: Sequence[str], targets: Sequence[str], labels: Sequence[str]) -> float:
    """Binary F1 of ``labels[1]`` after flipping invalid answers (the script's ``f1``)."""
    return _flipped_f1(preds, targets, labels, average="binary")


def macro_f1(preds: Sequence[str], targets: Sequence[str], labels: Sequence[str]) -> float:
    """Macro-F1 over the labels that occur, after flipping invalid answers (the script's ``macro_f1``)."""
    return _flipped_f1(preds, targets, labels, average="macro")


def _to_float(text: str, default: float = STSB_DEFAULT) -> float:
    try:
        return float(text)
    except ValueError:
        return default


def correlations(preds: Sequence[str], targets: Sequence[str]) -> dict[str, float]:
    """Pearson and Spearman with -1.0 for every answer ``float()`` cannot read (evaluate's metrics are
    scipy's ``pearsonr`` / ``spearmanr``)."""
    from scipy.stats import pearsonr, spearmanr

    xs, ys = [_to_float(p) for p in preds], [_to_float(t) for t in targets]
    if len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return {"pearson": math.nan, "spearman": math.nan}
    return {"pearson": float(pearsonr(ys, xs)[0]), "spearman": float(spearmanr(ys, xs)[0])}


def record(preds: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """The official ReCoRD EM/F1 over rows duplicated once per gold: each query's best-over-golds score
    counts len(golds) times (the script's test file repeats a query per gold answer)."""
    from bench.metrics.record import exact_match as em_one
    from bench.metrics.record import token_f1

    total = sum(len(g) for g in golds)
    if not total:
        return {"record_em": math.nan, "record_f1": math.nan}
    em = sum(len(g) * max(em_one(p, x) for x in g) for p, g in zip(preds, golds, strict=True) if g)
    f1 = sum(len(g) * max(token_f1(p, x) for x in g) for p, g in zip(preds, golds, strict=True) if g)
    return {"record_em": em / total, "record_f1": f1 / total}


def _gsm8k_number(text: str) -> float | None:
    if "####" not in text:
        return None
    try:
        return float(text.split("####")[-1].strip().replace(",", "").replace("%", ""))
    except ValueError:
        return None


def gsm8k(preds: Sequence[str], targets: Sequence[str]) -> dict[str, float]:
    """Share of answers whose number after the last ``####`` equals the reference's (< 1e-6 apart)."""
    if not targets:
        return {"accuracy": math.nan, "format_errors": 0}
    correct = errors = 0
    for p, t in zip(preds, targets, strict=True):
        pred, gold = _gsm8k_number(p), _gsm8k_number(t)
        correct += pred is not None and gold is not None and abs(pred - gold) < 1e-6
        errors += pred is None or gold is None
    return {"accuracy": correct / len(targets), "format_errors": errors}


_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
# the script's r"\\s+" matches a backslash then s's, not whitespace: its "remove spaces" is a no-op
_SCRIPT_SPACES = re.compile(r"\\s+")
_SVAMP_RHS = re.compile(r"^[+-]?(\d+(\.\d+)?|\.\d+)$")


def _safe_eval(expr: str) -> float:
    def _eval(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](_eval(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](_eval(node.left), _eval(node.right))
        raise ValueError("Disallowed expression")

    return float(_eval(ast.parse(expr.strip(), mode="eval").body))


def _single_outer_parens(s: str) -> bool:
    s = s.strip()
    if not (s.startswith("(") and s.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(s):
        depth += ch == "("
        depth -= ch == ")"
        if ch == ")" and depth == 0 and i != len(s) - 1:
            return False
    return depth == 0


def svamp_equation(text: str) -> str:
    """peftbench's SVAMP targets add a ``#### n`` line after the paper's ``( expr ) = n``: the script
    reads the equation before it (the only adaptation; without it every answer is a format error)."""
    return text.split("####")[0].strip()


def _canon(eq: str) -> str:
    lhs, rhs = (part.strip() for part in eq.split("=", 1))
    x = float(rhs.replace(",", ""))
    number = str(int(x)) if math.isclose(x, round(x), rel_tol=0, abs_tol=1e-9) else str(x)
    return f"{_SCRIPT_SPACES.sub('', lhs)}={number}"


def _svamp_one(pred: str, gold: str) -> tuple[bool, bool, bool]:
    """(self-consistent, format error, equals the gold equation) for one answer."""
    if pred.count("=") != 1:
        return False, True, False
    lhs, rhs = (part.strip() for part in pred.split("=", 1))
    if not _single_outer_parens(lhs) or not _SVAMP_RHS.match(rhs.replace(",", "")):
        return False, True, False
    try:
        ok = abs(_safe_eval(lhs[1:-1]) - float(rhs.replace(",", ""))) < 1e-6
    except Exception:  # the script: any evaluation error (syntax, division by zero) is a format error
        return False, True, False
    return ok, False, ok and bool(gold) and _canon(pred) == _canon(gold)


def svamp(preds: Sequence[str], targets: Sequence[str]) -> dict[str, float]:
    """``accuracy`` = share of self-consistent predicted equations (the gold is not compared)."""
    if not targets:
        return {"accuracy": math.nan, "format_errors": 0, "gold_exact_equation": 0}
    rows = [_svamp_one(svamp_equation(p), svamp_equation(t)) for p, t in zip(preds, targets, strict=True)]
    return {
        "accuracy": sum(r[0] for r in rows) / len(rows),
        "format_errors": sum(r[1] for r in rows),
        "gold_exact_equation": sum(r[2] for r in rows),
    }


def codebleu(preds: Sequence[str], targets: Sequence[str]) -> float:
    """CodeBLEU (Python, weights 0.25 each) of the lower-cased code."""
    from bench.metrics.code import WEIGHTS

    if not targets:
        return math.nan
    from codebleu import calc_codebleu  # heavy: loads tree-sitter

    return float(calc_codebleu(list(targets), list(preds), lang="python", weights=WEIGHTS)["codebleu"])
