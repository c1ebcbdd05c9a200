"""Uncertainty and paired comparisons, seeded and deterministic.

- **Cell CI**: a 95% percentile bootstrap of the mean over seeds. Where every seed of the cell has a
  ``predictions.jsonl`` whose per-example scores reproduce the recorded headline (the headline is
  a per-example mean: accuracy, exact match), the bootstrap is two-level: seeds with replacement, then
  test examples with replacement within each drawn seed. Otherwise (F1, Pearson, CodeBLEU: not a mean
  over examples) seeds only. Each cell says which (``ci_kind``).
- **Per-example scores** come from the benchmark's own scorer
  (:func:`bench.evaluation.scoring.score_answers` on each ``predictions.jsonl`` row alone, with the run's
  dataset config and headline convention), for the headline metrics that are a mean over examples
  (:data:`EXAMPLE_MEANS`: accuracy, math exact match, ReCoRD EM/F1); an answer the scorer cannot read
  scores 0, as it does in the headline.
- **Paired test** of A vs B: on the seeds both have and, where both cells' per-example scores reproduce
  their recorded headlines, on the examples both answered (matched by the rows' ``id``; by row order,
  with a warning, when ids are absent): the per-example score difference, a two-sided paired
  permutation test (each pair's difference keeps or flips its sign), exact when at most 16 pairs differ,
  else 10,000 seeded random sign flips (p = (k + 1) / (N + 1)). Otherwise (no predictions, or a
  headline such as F1, Pearson or CodeBLEU that is not a mean over examples): the per-seed headline
  difference, the same test over seeds (with 5 seeds the smallest p is 2/32 = 0.0625).
- **Multiple comparisons**: Holm's step-down correction over the family a table tests.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

LEVEL = 0.05  # significance level of every mark, after Holm's correction
CONFIDENCE = 0.95
N_BOOTSTRAP = 2000
N_PERMUTATIONS = 10_000
EXACT_UP_TO = 16  # pairs that differ; 2**16 sign patterns enumerated
RNG_SEED = 0
PREDICTIONS_FILE = "predictions.jsonl"
_CELLS_PER_CHUNK = 2_000_000  # resampling matrices stay near 16 MB


# Per convention, the headline metrics whose value is the mean over test examples of the same metric
# on each example alone: their per-example scores can be paired and resampled. Not here: F1 (macro or
# binary), MCC, Pearson, Spearman, CodeBLEU (corpus-level), and the paper script's ReCoRD (each query
# weighted by its number of golds).
EXAMPLE_MEANS = {
    "peftbench": frozenset({"accuracy", "math_exact_match", "record_em", "record_f1"}),
    "paper": frozenset({"accuracy", "exact_match"}),  # gsm8k / svamp accuracy; label exact match
}
# What score_answers reads of a dataset config (a record without them predates the schema).
_SCORER_KEYS = ("name", "task_type", "label_names", "metrics", "pos_label", "references_field")

RowScorer = Callable[[Mapping], float]


def row_answer(row: Mapping) -> tuple[object, object]:
    """(answer, reference) of a predictions.jsonl row, as ``bench.rescore`` reads them: the generated
    text (score mode: the chosen label), and the reference (``references``: every gold)."""
    answer = row.get("generated") if row.get("generated") is not None else row.get("parsed")
    return (None if answer is None else str(answer)), row.get("references", row.get("reference"))


def example_scorer(dataset: Mapping | None, metric: str | None, convention: str | None) -> RowScorer | None:
    """The per-example score of ``metric`` for runs of dataset config ``dataset`` (the record's
    ``config.dataset``) scored in ``convention``: the scorer's value of that metric on the row alone.
    None when the metric is not a mean over examples (:data:`EXAMPLE_MEANS`) or the config lacks what the
    scorer reads."""
    convention = convention or "peftbench"  # records from before the conventions
    if not dataset or metric not in EXAMPLE_MEANS.get(convention, ()):
        return None
    if any(key not in dataset for key in _SCORER_KEYS):
        return None
    return _scorer(json.dumps(dict(dataset), sort_keys=True, default=str), metric, convention)


@functools.cache
def _scorer(dataset_json: str, metric: str, convention: str) -> RowScorer:
    from omegaconf import OmegaConf

    from bench.data.prompts import apply_prompt_style
    from bench.evaluation.scoring import score_answers

    ds = OmegaConf.create(json.loads(dataset_json))
    if ds.get("prompt_style") == "paper":  # as bench.rescore: the label words the run answered in
        apply_prompt_style(ds)
    ds.metrics = [metric] if convention == "peftbench" else []  # the one value read; parsing unchanged

    @functools.lru_cache(maxsize=100_000)  # label words repeat: each (answer, reference) scored once
    def score(answer, reference_json: str) -> float:
        with warnings.catch_warnings():  # the other convention's F1 of one row is ill-defined, unread
            warnings.simplefilter("ignore")
            scores = score_answers(ds, [answer], [json.loads(reference_json)])
        return float((scores.metrics_paper if convention == "paper" else scores.metrics)[metric])

    def score_row(row: Mapping) -> float:
        answer, reference = row_answer(row)
        return score(answer, json.dumps(reference))

    return score_row


@dataclass(frozen=True)
class Answers:
    """One run's per-example headline scores (0/1 for accuracy); ``ids`` None when its rows carry no
    ``id``."""

    ids: list[str] | None
    scores: np.ndarray


def load_answers(run_dir: str | Path, scorer: RowScorer | None) -> Answers | None:
    """The run's per-example scores by ``scorer`` (:func:`example_scorer`); None without predictions,
    without a scorer, or when the scorer refuses a row (logged)."""
    path = Path(run_dir) / PREDICTIONS_FILE
    if scorer is None or not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    ids = [str(r["id"]) for r in rows] if rows and all("id" in r for r in rows) else None
    try:
        scores = np.array([scorer(r) for r in rows], dtype=float)
    except Exception as err:  # noqa: BLE001  a data bug (a reference without a number), a config the
        # scorer cannot read: one run's cells are tested over seeds, the analysis goes on
        log.warning("%s: not scored per example (%r): its cells are tested over seeds", path, err)
        return None
    return Answers(ids, scores)


def align(a: Answers, b: Answers, what: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The per-example scores of the examples both runs answered, in the same order."""
    if a.ids is not None and b.ids is not None:
        index_b = {i: k for k, i in enumerate(b.ids)}
        common = [(k, index_b[i]) for k, i in enumerate(a.ids) if i in index_b]
        if not common:
            return np.empty(0), np.empty(0)
        ka, kb = map(list, zip(*common, strict=True))
        return a.scores[ka], b.scores[kb]
    log.warning("%s: predictions.jsonl rows carry no 'id': paired by row order", what or "paired test")
    n = min(len(a.scores), len(b.scores))
    if len(a.scores) != len(b.scores):
        log.warning("%s: %d vs %d rows; the first %d paired", what, len(a.scores), len(b.scores), n)
    return a.scores[:n], b.scores[:n]


def paired_permutation_p(diffs, n_permutations: int = N_PERMUTATIONS, seed: int = RNG_SEED) -> float:
    """Two-sided p-value of a paired sign-flip permutation test on ``diffs`` (A - B per pair).

    The statistic is the sum of the differences; pairs with no difference are left out (their sign
    changes nothing). Exact enumeration of the 2^m sign patterns when m <= 16 differing pairs.
    """
    d = np.asarray(diffs, dtype=float)
    d = d[d != 0]
    if len(d) == 0:
        return 1.0
    observed = abs(d.sum())
    tol = 1e-9 * max(1.0, observed)
    if len(d) <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        return float(np.mean(np.abs(signs @ d) >= observed - tol))
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = max(1, _CELLS_PER_CHUNK // len(d))  # bounded memory: 10,000 x 50,000 pairs would be 4 GB
    for start in range(0, n_permutations, chunk):
        size = min(chunk, n_permutations - start)
        signs = rng.choice((1.0, -1.0), size=(size, len(d)))
        hits += int(np.sum(np.abs(signs @ d) >= observed - tol))
    return (hits + 1) / (n_permutations + 1)


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given; NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = len(finite)
    running = 0.0
    for rank, k in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[k]))
        out[k] = running
    return out.tolist()


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    alpha = (1 - CONFIDENCE) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _resampled_means(values: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n`` resamples (with replacement) of ``values``, in chunks of bounded memory."""
    chunk = max(1, _CELLS_PER_CHUNK // max(1, len(values)))
    parts = []
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        parts.append(values[rng.integers(0, len(values), size=(size, len(values)))].mean(axis=1))
    return np.concatenate(parts)


def bootstrap_means(
    seed_values, seed_examples: list[np.ndarray] | None = None, n: int = N_BOOTSTRAP, seed: int = RNG_SEED
) -> np.ndarray:
    """``n`` bootstrap replicates of the mean over seeds: seeds drawn with replacement and, with
    ``seed_examples`` (one per-example score array per seed, whose means are the seed values), each draw
    replaced by the mean of its own resample of that seed's examples (a seed drawn twice in a replicate
    gets two independent resamples)."""
    values = np.asarray(seed_values, dtype=float)
    k = len(values)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(n, k))
    if seed_examples is None:
        return values[draws].mean(axis=1)
    means = np.empty((n, k))
    for s, examples in enumerate(seed_examples):  # one resample per (replicate, draw) of seed s
        where = draws == s
        means[where] = _resampled_means(np.asarray(examples, dtype=float), int(where.sum()), rng)
    return means.mean(axis=1)


def bootstrap_ci(
    seed_values, seed_examples: list[np.ndarray] | None = None, n: int = N_BOOTSTRAP, seed: int = RNG_SEED
) -> tuple[float, float]:
    """95% percentile CI of the mean over seeds (:func:`bootstrap_means`); ``seed_examples`` adds the
    second level: examples resampled within each drawn seed. One seed without examples: no interval
    (NaN, NaN)."""
    k = len(seed_values)
    if k == 0 or (k == 1 and seed_examples is None):
        return math.nan, math.nan
    return _percentiles(bootstrap_means(seed_values, seed_examples, n, seed))


def paired_bootstrap_ci(
    diffs_per_seed: list[np.ndarray], n: int = N_BOOTSTRAP, seed: int = RNG_SEED
) -> tuple[float, float]:
    """95% CI of the mean paired difference: seeds, then the paired examples within each seed."""
    if not diffs_per_seed:
        return math.nan, math.nan
    return bootstrap_ci([d.mean() for d in diffs_per_seed], diffs_per_seed, n, seed)
