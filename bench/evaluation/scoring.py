"""Score one set of answers in both conventions: peftbench's (``metrics``), PEFT-Bench's (``metrics_paper``).

Used by prediction (bench.evaluation.predict) and by re-scoring saved predictions (bench.rescore), so a
metric fix reaches old runs without running them again.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.config.schema import LABEL_TASKS, METRIC_CONVENTIONS
from bench.evaluation.parse import parse_label, strip_think
from bench.metrics import compute_metrics, paper
from bench.metrics.math_answer import final_answer
from bench.metrics.record import normalize_answer
from bench.metrics.regression import parse_number

CONVENTIONS = METRIC_CONVENTIONS


@dataclass
class Scores:
    metrics: dict[str, float]  # peftbench's convention
    metrics_paper: dict[str, float]  # PEFT-Bench's scoring script
    paper_headline: str | None  # the metric PEFT-Bench reports for this dataset (None: no convention)
    parsed: list  # per row: the label / number / text peftbench's metrics read (None: invalid)
    valid: list[bool]  # per row: peftbench could read the answer


def example_id(row_id: str, prompt: str) -> str:
    """``<row id>-<8 hex of the prompt's SHA-1>``: stable across runs, and it changes with the prompt."""
    return f"{row_id}-{hashlib.sha1(prompt.encode()).hexdigest()[:8]}"


def paper_kind(ds) -> str | None:
    """Which of the script's scorers applies to dataset config ``ds`` (by task type and label count; the
    script's one dataset-specific rule, SVAMP's equation check, by the dataset's name)."""
    task = ds.task_type
    if task in LABEL_TASKS:
        return "f1" if len(ds.label_names) == 2 else "f1_macro"
    if task == "regression":
        return "pearson"
    if task == "code":
        return "codebleu"
    if ds.references_field or "record_f1" in ds.metrics:
        return "record"
    if str(ds.name).rsplit("/", 1)[-1] == "svamp":
        return "svamp"
    if "math_exact_match" in ds.metrics:
        return "gsm8k"
    return None


PAPER_HEADLINES = {
    "f1": "f1",
    "f1_macro": "f1_macro",
    "pearson": "pearson",
    "record": "record_f1",
    "svamp": "accuracy",
    "gsm8k": "accuracy",
    "codebleu": "codebleu",
}


def headline(scores: Scores, ds, convention: str) -> tuple[str, float | None]:
    """(metric name, value) reported as the run's headline under ``convention``."""
    if convention not in CONVENTIONS:
        raise ValueError(f"metric.convention must be one of {CONVENTIONS}, got {convention!r}")
    if convention == "paper":
        return scores.paper_headline, scores.metrics_paper.get(scores.paper_headline)
    return ds.headline_metric, scores.metrics.get(ds.headline_metric)


def _peftbench(ds, texts: list[str], references) -> tuple[dict[str, float], list, list[bool]]:
    names = list(ds.metrics)
    if ds.task_type in LABEL_TASKS:
        parsed = [parse_label(t, list(ds.label_names)) for t in texts]
        metrics = compute_metrics(
            names, parsed, references, labels=list(ds.label_names), pos_label=ds.pos_label
        )
        valid = [p is not None for p in parsed]
    else:
        if ds.task_type == "regression":
            parsed = [parse_number(t) for t in texts]
            valid = [p is not None for p in parsed]
        elif "math_exact_match" in names:
            parsed = [final_answer(t) for t in texts]
            valid = [p is not None for p in parsed]
        else:  # ReCoRD and code: the text itself; empty (after normalisation for ReCoRD) is invalid
            parsed = texts
            readable = normalize_answer if ds.task_type != "code" else str.strip
            valid = [bool(readable(t)) for t in texts]
        metrics = compute_metrics(names, texts, references, labels=[])
    metrics["invalid_rate"] = (valid.count(False) / len(valid)) if valid else math.nan
    return metrics, [p if v else None for p, v in zip(parsed, valid, strict=True)], valid


def _paper(ds, answers: Sequence[str | None], references) -> tuple[str | None, dict[str, float]]:
    kind = paper_kind(ds)
    preds = [paper.read(a) for a in answers]
    if kind is None:
        return None, {}
    if kind == "record":
        golds = [[paper.read(g) for g in (r if isinstance(r, list | tuple) else [r])] for r in references]
        out = paper.record(preds, golds)
        out["invalid_rate"] = _rate([not p for p in preds])
        return PAPER_HEADLINES[kind], out
    targets = [paper.read(r) for r in references]
    if kind in ("f1", "f1_macro"):
        labels = [label.lower() for label in ds.label_names]
        score = paper.f1_second_label if kind == "f1" else paper.macro_f1
        out = {kind: score(preds, targets, labels), "exact_match": paper.exact_match(preds, targets)}
        out["invalid_rate"] = _rate([p[: paper.EM_WIDTH] not in labels for p in preds])
    elif kind == "pearson":
        out = paper.correlations(preds, targets)
        out["invalid_rate"] = _rate([_not_float(p) for p in preds])
    elif kind == "gsm8k":
        out = paper.gsm8k(preds, targets)
        out["invalid_rate"] = out["format_errors"] / len(preds) if preds else math.nan
    elif kind == "svamp":
        out = paper.svamp(preds, targets)
        out["invalid_rate"] = out["format_errors"] / len(preds) if preds else math.nan
    else:
        out = {"codebleu": paper.codebleu(preds, targets), "invalid_rate": _rate([not p for p in preds])}
    return PAPER_HEADLINES[kind], out


def _rate(flags: list[bool]) -> float:
    return flags.count(True) / len(flags) if flags else math.nan


def _not_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


def score_answers(ds, answers: Sequence[str | None], references: Sequence) -> Scores:
    """Both conventions for one set of answers to dataset config ``ds``.

    Args:
        ds: the dataset config (task_type, label_names, metrics, headline_metric, pos_label, name).
        answers: the generated texts (score mode: the chosen label words).
        references: per row the reference (a list of golds for multi-answer rows).
    """
    texts = [strip_think(a) for a in answers]
    metrics, parsed, valid = _peftbench(ds, texts, list(references))
    paper_headline, metrics_paper = _paper(ds, answers, list(references))
    return Scores(metrics, metrics_paper, paper_headline, parsed, valid)
