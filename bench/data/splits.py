"""The PEFT-Bench split protocol and seeded, stratified caps.

train  -> cap to ``max_train_samples`` (fixed ``subset_seed``) -> hold out ``val_fraction`` (run seed)
test   =  the hub's validation split (``test_split``), capped to ``max_eval_samples`` (fixed seed)

Caps use a fixed seed so every method and seed sees the same rows; the hold-out uses the run seed.
Both are stratified by label when every class has at least two rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def _stratify(labels: Sequence | None):
    if labels is None:
        return None
    counts = Counter(labels)
    return list(labels) if len(counts) > 1 and min(counts.values()) >= 2 else None


def sample_indices(n_rows: int, n: int | None, seed: int, labels: Sequence | None = None) -> list[int]:
    """Indices of a seeded (stratified when possible) sample of ``n`` of ``n_rows`` rows, in row order."""
    if n is None or n >= n_rows:
        return list(range(n_rows))
    from sklearn.model_selection import train_test_split

    try:
        keep, _ = train_test_split(
            np.arange(n_rows), train_size=n, random_state=seed, stratify=_stratify(labels)
        )
    except ValueError:  # too few rows per class for this sample size
        keep, _ = train_test_split(np.arange(n_rows), train_size=n, random_state=seed)
    return sorted(int(i) for i in keep)


def holdout_indices(
    n_rows: int, fraction: float, seed: int, labels: Sequence | None = None
) -> tuple[list[int], list[int]]:
    """(train, validation) indices: ``fraction`` of rows (at least one) held out with ``seed``.

    ``fraction`` 0 holds out nothing: every row trains and there is no validation split.
    """
    from sklearn.model_selection import train_test_split

    if fraction == 0:
        return list(range(n_rows)), []
    n_val = max(1, round(n_rows * fraction))
    if n_rows < 2:
        raise ValueError(f"cannot hold out validation rows from {n_rows} training row(s)")
    idx = np.arange(n_rows)
    try:
        train, val = train_test_split(idx, test_size=n_val, random_state=seed, stratify=_stratify(labels))
    except ValueError:
        train, val = train_test_split(idx, test_size=n_val, random_state=seed)
    return sorted(int(i) for i in train), sorted(int(i) for i in val)
