"""Uncertainty and paired comparisons, seeded and deterministic.

- **Cell CI**: a 95% percentile bootstrap of the mean over seeds. Where every seed of the cell has a
  ``predictions.jsonl`` whose per-example correctness reproduces the recorded headline (the headline is
  a per-example mean: accuracy, exact match), the bootstrap is two-level: seeds with replacement, then
  test examples with replacement within each drawn seed. Otherwise (F1, Pearson, CodeBLEU: not a mean
  over examples) seeds only. Each cell says which (``ci_kind``).
- **Paired test** of A vs B: on the seeds both have and, where both have predictions, on the examples
  both answered (matched by the rows' ``id``; by row order, with a warning, when ids are absent): the
  per-example correctness difference (an invalid answer is wrong), a two-sided paired permutation test
  (each pair's difference keeps or flips its sign), exact when at most 16 pairs differ, else 10,000
  seeded random sign flips (p = (k + 1) / (N + 1)). Without predictions: the per-seed headline
  difference, the same test over seeds (with 5 seeds the smallest p is 2/32 = 0.0625).
- **Multiple comparisons**: Holm's step-down correction over the family a table tests.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
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


def is_correct(row: dict) -> bool:
    """The answer equals its reference (any gold, for multi-answer rows); invalid answers are wrong."""
    parsed = row.get("parsed")
    if parsed is None or row.get("valid") is False:
        return False
    reference = row.get("reference")
    if isinstance(reference, list):
        return parsed in reference
    return parsed == reference


@dataclass(frozen=True)
class Answers:
    """One run's per-example correctness; ``ids`` None when its rows carry no ``id``."""

    ids: list[str] | None
    correct: np.ndarray


def load_answers(run_dir: str | Path) -> Answers | None:
    path = Path(run_dir) / PREDICTIONS_FILE
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    ids = [str(r["id"]) for r in rows] if rows and all("id" in r for r in rows) else None
    return Answers(ids, np.array([is_correct(r) for r in rows], dtype=float))


def align(a: Answers, b: Answers, what: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The correctness of the examples both runs answered, in the same order."""
    if a.ids is not None and b.ids is not None:
        index_b = {i: k for k, i in enumerate(b.ids)}
        common = [(k, index_b[i]) for k, i in enumerate(a.ids) if i in index_b]
        if not common:
            return np.empty(0), np.empty(0)
        ka, kb = map(list, zip(*common, strict=True))
        return a.correct[ka], b.correct[kb]
    log.warning("%s: predictions.jsonl rows carry no 'id': paired by row order", what or "paired test")
    n = min(len(a.correct), len(b.correct))
    if len(a.correct) != len(b.correct):
        log.warning("%s: %d vs %d rows; the first %d paired", what, len(a.correct), len(b.correct), n)
    return a.correct[:n], b.correct[:n]


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


def bootstrap_ci(
    seed_values, seed_examples: list[np.ndarray] | None = None, n: int = N_BOOTSTRAP, seed: int = RNG_SEED
) -> tuple[float, float]:
    """95% percentile CI of the mean over seeds. ``seed_examples`` (one per-example score array per
    seed, whose means are the seed values) adds the second level: examples resampled within each seed.
    One seed without examples: no interval (NaN, NaN)."""
    values = np.asarray(seed_values, dtype=float)
    k = len(values)
    if k == 0 or (k == 1 and seed_examples is None):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(n, k))
    if seed_examples is None:
        return _percentiles(values[draws].mean(axis=1))
    # per seed, n resampled example means; replicate b uses the b-th resample of each drawn seed
    resampled = np.stack([_resampled_means(ex, n, rng) for ex in seed_examples])
    return _percentiles(resampled[draws, np.arange(n)[:, None]].mean(axis=1))


def paired_bootstrap_ci(
    diffs_per_seed: list[np.ndarray], n: int = N_BOOTSTRAP, seed: int = RNG_SEED
) -> tuple[float, float]:
    """95% CI of the mean paired difference: seeds, then the paired examples within each seed."""
    if not diffs_per_seed:
        return math.nan, math.nan
    return bootstrap_ci([d.mean() for d in diffs_per_seed], diffs_per_seed, n, seed)
