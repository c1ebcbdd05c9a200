"""A fair hyperparameter search (``search=<name>``, conf/search/): the pure core, and its record.

Every (model, method, dataset) cell gets the same number of trials (``search.budget``), drawn from its
method family's space (:func:`cell_space`, :func:`trials`); each trial is one ordinary run scored on the
held-out validation split only, and :func:`select` picks the best validation objective. The search's
choices are kept in ``search.json`` (:class:`SearchRecord`, one :class:`CellRecord` per cell), written
atomically. ``python -m bench.search`` (:mod:`bench.search_launch`) runs both stages; this module needs
neither torch nor Hydra, so the planner and the analysis tables import it cheaply.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.errors import ConfigError
from bench.results import read_result, write_json_atomic

OBJECTIVE_SPLIT = "validation"  # the only split a search ever reads a score from
SEARCH_FILE = "search.json"
SEARCHES_DIR = "searches"  # <paths.results_dir>/searches/<search name>/search.json
SUCCESS = "success"
DIRECTIONS = {"headline": max, "loss": min}  # objective -> the better of two values


def cell_space(search: Any, family: str) -> dict[str, list[Any]]:
    """The space a method family searches: ``search.family_space[family]`` if set, else ``search.space``."""
    family_space = dict(search.family_space or {})
    space = family_space.get(family, search.space)
    return {str(key): list(values) for key, values in dict(space).items()}


def trials(search: Any, family: str) -> list[dict[str, Any]]:
    """The trials of one cell: the space's grid (key order, last key fastest) as ``{dotted key: value}``.

    Raises:
        ConfigError: the grid does not hold exactly ``search.budget`` trials (every method gets the same).
    """
    space = cell_space(search, family)
    grid = [dict(zip(space, values, strict=True)) for values in itertools.product(*space.values())]
    if len(grid) != int(search.budget):
        source = f"search.family_space.{family}" if family in (search.family_space or {}) else "search.space"
        sizes = " x ".join(f"{len(v)} ({k})" for k, v in space.items()) or "empty"
        raise ConfigError(
            f"search={search.name}: method family {family!r} gets {len(grid)} trials from {source} "
            f"({sizes}), but search.budget={search.budget}: every method must get the same budget. "
            f"Give {source} a grid of {search.budget} values, or set search.budget={len(grid)} "
            "for every family."
        )
    return grid


def objective_value(record: Mapping[str, Any] | None, objective: str) -> float | None:
    """A trial's objective from its ``result.json``, read from the validation split only.

    ``headline``: ``record["validation"]["headline_value"]``; ``loss``: ``record["best_val_loss"]`` (the
    held-out validation loss of training). The test score (``record["headline_value"]``) is never read.
    None when the run did not succeed or has no finite value.
    """
    if objective not in DIRECTIONS:
        raise ConfigError(f"search.objective={objective!r}: expected one of {sorted(DIRECTIONS)}")
    if not record or record.get("status") != SUCCESS:
        return None
    if objective == "headline":
        value = (record.get("validation") or {}).get("headline_value")
    else:
        value = record.get("best_val_loss")
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


@dataclass
class TrialRecord:
    """One trial (one run) in ``search.json``."""

    run_key: str
    run_dir: str
    settings: dict[str, Any]
    learning_rate: float | None = None  # the effective learning rate the run trained with
    status: str = "missing"  # result.json's status, or missing (never ran)
    objective: float | None = None
    wall_time_s: float | None = None
    train_runtime_s: float | None = None
    eval_runtime_s: float | None = None  # validation prediction time

    @classmethod
    def from_result(
        cls, run_key: str, run_dir: str | Path, settings: Mapping[str, Any], record: Mapping[str, Any] | None,
        objective: str,
    ) -> TrialRecord:  # fmt: skip
        """The trial as its ``result.json`` (or None: not run yet) records it."""
        record = record or {}
        return cls(
            run_key=run_key,
            run_dir=str(run_dir),
            settings=dict(settings),
            learning_rate=record.get("learning_rate"),
            status=record.get("status", "missing"),
            objective=objective_value(record, objective),
            wall_time_s=record.get("wall_time_s"),
            train_runtime_s=record.get("train_runtime_s"),
            eval_runtime_s=(record.get("validation") or {}).get("eval_runtime_s"),
        )


@dataclass(frozen=True)
class Choice:
    """What :func:`select` chose: the trial's index and settings (None when no trial succeeded)."""

    index: int | None
    settings: dict[str, Any] | None
    objective: float | None
    at_edge: list[str]


def _distance(value: Any, default: Any) -> float:
    """How far a value is from the default: log distance for positive numbers, 0/1 for anything else."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (value, default))
    if numbers and value > 0 and default > 0:
        return round(abs(math.log(value) - math.log(default)), 9)  # 0.1 and 10 are as far from 1
    if numbers:
        return abs(value - default)
    return 0.0 if value == default else 1.0


def edge_keys(settings: Mapping[str, Any], space: Mapping[str, Sequence[Any]]) -> list[str]:
    """The keys whose value is the smallest or largest of their (numeric, 2+ values) range."""
    edges = []
    for key, values in space.items():
        numeric = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if key in settings and len(set(numeric)) > 1 and len(numeric) == len(values):
            if settings[key] in (min(numeric), max(numeric)):
                edges.append(key)
    return edges


def select(
    trials_records: Sequence[TrialRecord],
    objective: str,
    space: Mapping[str, Sequence[Any]] | None = None,
    default: Mapping[str, Any] | None = None,
) -> Choice:
    """The trial with the best validation objective (``headline``: highest, ``loss``: lowest).

    Trials that did not succeed or have no objective never win. Ties go to the settings closest to
    ``default`` (summed log distance for numbers), then to the first trial. ``at_edge`` lists the keys of
    ``space`` (else the range the trials span) where the chosen value is the smallest or largest tried.
    """
    better = DIRECTIONS.get(objective)
    if better is None:
        raise ConfigError(f"search.objective={objective!r}: expected one of {sorted(DIRECTIONS)}")
    valid = [(i, t) for i, t in enumerate(trials_records) if t.status == SUCCESS and t.objective is not None]
    if not valid:
        return Choice(None, None, None, [])
    best = better(t.objective for _, t in valid)
    tied = [(i, t) for i, t in valid if t.objective == best]
    default = default or {}

    def closeness(item: tuple[int, TrialRecord]) -> tuple[float, int]:
        index, trial = item
        gap = sum(_distance(v, default[k]) for k, v in trial.settings.items() if k in default)
        return gap, index

    index, trial = min(tied, key=closeness)
    if space is None:
        keys = {k for t in trials_records for k in t.settings}
        space = {k: sorted({t.settings[k] for t in trials_records if k in t.settings}) for k in keys}
    return Choice(index, dict(trial.settings), trial.objective, edge_keys(trial.settings, space))


def budget_spent(trials_records: Sequence[TrialRecord], device: str | None) -> dict[str, Any]:
    """Trials run and succeeded, their summed wall time, and device-hours (one device per run)."""
    ran = [t for t in trials_records if t.status != "missing"]
    wall = sum(t.wall_time_s or 0.0 for t in ran)
    return {
        "trials": len(ran),
        "trials_succeeded": sum(t.status == SUCCESS for t in ran),
        "wall_time_s": round(wall, 3),
        "device_hours": round(wall / 3600, 6),
        "device": device,
    }


@dataclass
class CellRecord:
    """One (model, method, dataset) cell of ``search.json``: its trials, the choice and the final runs."""

    model: str
    method: str
    method_family: str
    dataset: str
    space: dict[str, list[Any]]
    default: dict[str, Any]
    trials: list[TrialRecord] = field(default_factory=list)
    chosen: dict[str, Any] | None = None
    chosen_objective: float | None = None
    chosen_learning_rate: float | None = None
    at_edge: list[str] = field(default_factory=list)
    budget_spent: dict[str, Any] = field(default_factory=dict)
    final: dict[str, list[str]] = field(default_factory=lambda: {"tuned": [], "default": []})

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.method, self.dataset)

    def choose(self, objective: str, device: str | None = None) -> Choice:
        """Select among the trials (validation only) and record the choice and the budget spent."""
        choice = select(self.trials, objective, self.space, self.default)
        self.chosen = choice.settings
        self.chosen_objective = choice.objective
        self.chosen_learning_rate = None if choice.index is None else self.trials[choice.index].learning_rate
        self.at_edge = choice.at_edge
        self.budget_spent = budget_spent(self.trials, device)
        return choice

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellRecord:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        known = {f.name for f in fields(TrialRecord)}
        values["trials"] = [
            TrialRecord(**{k: v for k, v in t.items() if k in known}) for t in data.get("trials", [])
        ]
        return cls(**values)


@dataclass
class SearchRecord:
    """``search.json``: the search's settings and one :class:`CellRecord` per cell."""

    search: str
    objective: str
    budget: int
    max_validation_samples: int | None
    trial_seed: int
    final_seeds: list[int]
    objective_split: str = OBJECTIVE_SPLIT
    git_commit: str | None = None
    updated_at: str | None = None
    cells: list[CellRecord] = field(default_factory=list)

    @classmethod
    def from_config(cls, search: Any, git_commit: str | None = None) -> SearchRecord:
        return cls(
            search=str(search.name),
            objective=str(search.objective),
            budget=int(search.budget),
            max_validation_samples=search.max_validation_samples,
            trial_seed=int(search.trial_seed),
            final_seeds=[int(s) for s in search.final_seeds],
            git_commit=git_commit,
        )

    def cell(self, model: str, method: str, dataset: str) -> CellRecord | None:
        return next((c for c in self.cells if c.key == (model, method, dataset)), None)

    def merge(self, cells: Sequence[CellRecord]) -> None:
        """Replace the cells with the same (model, method, dataset), append the others (a relaunch or a
        second grid of the same search keeps the cells it did not touch)."""
        for new in cells:
            at = next((i for i, c in enumerate(self.cells) if c.key == new.key), None)
            if at is None:
                self.cells.append(new)
            else:
                self.cells[at] = new

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        order = ("search", "objective", "objective_split", "budget", "max_validation_samples", "trial_seed",
                 "final_seeds", "git_commit", "updated_at", "cells")  # fmt: skip
        return {k: data[k] for k in order}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchRecord:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["cells"] = [CellRecord.from_dict(c) for c in data.get("cells", [])]
        return cls(**values)


def search_path(results_dir: str | Path, name: str) -> Path:
    """Where a search's record lives: ``<paths.results_dir>/searches/<name>/search.json``."""
    return Path(results_dir) / SEARCHES_DIR / name / SEARCH_FILE


def read_search(path: str | Path) -> SearchRecord | None:
    """The record at ``path``, or None where there is none (or it is not complete JSON)."""
    data = read_result(path)
    return None if data is None else SearchRecord.from_dict(data)


def write_search(path: str | Path, record: SearchRecord) -> None:
    """Write ``record`` atomically (write-then-rename), stamping ``updated_at``."""
    record.updated_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json_atomic(path, record.to_dict())


if __name__ == "__main__":  # python -m bench.search: the front end, which imports Hydra
    import sys

    from bench.search_launch import main

    sys.exit(main())
