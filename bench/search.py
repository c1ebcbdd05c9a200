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
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.config.schema import SEARCH_OBJECTIVES
from bench.errors import ConfigError
from bench.lock import run_lock
from bench.results import read_result, write_json_atomic

OBJECTIVE_SPLIT = "validation"  # the only split a search ever reads a score from
SEARCH_FILE = "search.json"
SEARCHES_DIR = "searches"  # <paths.results_dir>/searches/<search name>/search.json
SUCCESS = "success"
FINISHED = (SUCCESS, "diverged")  # statuses a relaunch leaves alone
DIRECTIONS = {"headline": max, "loss": min}  # objective -> the better of two values
# keys every trial and final run gets from the search itself: a user override of them is refused
STAGE_SET_KEYS = ("seed", "eval.validation", "eval.test", "eval.max_validation_samples")
_OVERRIDE_KEY = re.compile(r"^(?:\+\+?|~)?([^=~+][^=]*?)(?:=|$)")


def check_search(search: Any) -> None:
    """The search's own settings, checked before anything runs.

    Raises:
        ConfigError: an unknown objective, no final seeds, a validation cap below 1 or a budget below 1.
    """
    problems = []
    if search.objective not in SEARCH_OBJECTIVES:
        expected = ", ".join(SEARCH_OBJECTIVES)
        problems.append(f"search.objective={search.objective!r}: expected one of {expected}")
    if int(search.budget) < 1:
        problems.append(f"search.budget={search.budget}: every cell needs at least 1 trial")
    if not list(search.final_seeds):
        problems.append("search.final_seeds=[]: stage 2 needs a seed at least, e.g. search.final_seeds=[42]")
    cap = search.max_validation_samples
    if cap is not None and int(cap) < 1:
        problems.append(
            f"search.max_validation_samples={cap}: predict at least 1 validation row (null: all held out)"
        )
    if problems:
        raise ConfigError(f"search={search.name}: " + "; ".join(problems))


def refused_overrides(search: Any, args: Sequence[str]) -> list[str]:
    """The user's overrides of keys the search sets itself (the seeds, the evaluated splits and the keys
    of any of its spaces), one error line each naming the fix; [] when there are none."""
    spaces = [dict(search.space or {}), *dict(search.family_space or {}).values()]
    varied = {str(k) for space in spaces for k in dict(space)}
    errors = []
    for arg in args:
        match = _OVERRIDE_KEY.match(arg)
        key = match.group(1) if match else ""
        if key == "seed":
            errors.append(
                f"{arg}: a search sets the seeds itself (search.trial_seed for the trials, "
                "search.final_seeds for the final runs); remove it"
            )
        elif key in STAGE_SET_KEYS:
            fix = "set search.max_validation_samples instead" if key.endswith("samples") else "remove it"
            errors.append(
                f"{arg}: a search sets {key} itself (the trials score the validation split only, the final "
                f"runs the test split); {fix}"
            )
        elif key in varied:
            fix = (
                "set the method's learning rate (trainer.learning_rate=...) instead"
                if key == "trainer.learning_rate_scale"
                else "set the values it tries in search.space (or search.family_space) instead"
            )
            errors.append(f"{arg}: {key} is what search={search.name} varies; {fix}")
    return errors


def override_value(value: Any) -> str:
    """A Python value as a Hydra override's value (``true``, ``null``, ``0.1``, ``'a b'``, ``[1,2]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    return text if re.fullmatch(r"[\w./:-]+", text) else "'" + text.replace("'", "\\'") + "'"


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
    validation_n: int | None = None  # validation rows predicted (the cap's sample; None: none predicted)
    validation_n_available: int | None = None  # rows held out, of which the cap took validation_n

    @classmethod
    def from_result(
        cls, run_key: str, run_dir: str | Path, settings: Mapping[str, Any], record: Mapping[str, Any] | None,
        objective: str,
    ) -> TrialRecord:  # fmt: skip
        """The trial as its ``result.json`` (or None: not run yet) records it."""
        record = record or {}
        validation = record.get("validation") or {}
        return cls(
            run_key=run_key,
            run_dir=str(run_dir),
            settings=dict(settings),
            learning_rate=record.get("learning_rate"),
            status=record.get("status", "missing"),
            objective=objective_value(record, objective),
            wall_time_s=record.get("wall_time_s"),
            train_runtime_s=record.get("train_runtime_s"),
            eval_runtime_s=validation.get("eval_runtime_s"),
            validation_n=validation.get("n"),
            validation_n_available=validation.get("n_available"),
        )

    @property
    def finished(self) -> bool:
        """Succeeded or diverged: a relaunch leaves it alone (a seeded trial that diverged does so again)."""
        return self.status in FINISHED


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


# one search.json holds one search: a relaunch with other values of these is refused
FIXED_SETTINGS = ("objective", "budget", "max_validation_samples", "trial_seed", "final_seeds", "space",
                  "family_space", "include_default")  # fmt: skip


@dataclass
class SearchRecord:
    """``search.json``: the search's settings and one :class:`CellRecord` per cell."""

    search: str
    objective: str
    budget: int
    max_validation_samples: int | None
    trial_seed: int
    final_seeds: list[int]
    # what the cells' trials were drawn from (None: a record from before they were kept)
    space: dict[str, list[Any]] | None = None
    family_space: dict[str, dict[str, list[Any]]] | None = None
    include_default: bool | None = None
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
            space={str(k): list(v) for k, v in dict(search.space or {}).items()},
            family_space={
                str(f): {str(k): list(v) for k, v in dict(space).items()}
                for f, space in dict(search.family_space or {}).items()
            },
            include_default=bool(search.include_default),
            git_commit=git_commit,
        )

    def differences(self, other: SearchRecord) -> list[str]:
        """The settings in which ``other`` (this search's config) differs from this record's, as
        ``"key: <here> there, <other> here"``; a setting this record does not hold is not compared."""
        return [
            f"{key}: {getattr(self, key)} there, {getattr(other, key)} here"
            for key in FIXED_SETTINGS
            if getattr(self, key) is not None and getattr(self, key) != getattr(other, key)
        ]

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
                 "final_seeds", "space", "family_space", "include_default", "git_commit", "updated_at",
                 "cells")  # fmt: skip
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


def check_record(path: str | Path, ours: SearchRecord) -> None:
    """Refuse a ``search.json`` at ``path`` that holds other settings than ``ours`` (before anything runs).

    Raises:
        ConfigError: naming the settings that differ, the folder to remove and the other way out.
    """
    there = read_search(path)
    differ = [] if there is None else there.differences(ours)
    if differ:
        folder = Path(path).parent
        raise ConfigError(
            f"{path} holds search={there.search} with other settings ({'; '.join(differ)}): remove {folder} "
            "to start this search again, or give it another search.name (or paths.results_dir)"
        )


def save_cells(path: str | Path, ours: SearchRecord, cells: Sequence[CellRecord]) -> SearchRecord:
    """Merge ``cells`` into the ``search.json`` at ``path`` as it is now, and write it.

    Read, merge and write happen under an exclusive lock on the folder (:func:`bench.lock.run_lock`), so
    two ``python -m bench.search`` of the same search (two grids, or a relaunch while one runs) keep each
    other's cells. Returns the record written.
    """
    path = Path(path)
    with run_lock(path.parent):
        check_record(path, ours)
        record = read_search(path) or SearchRecord.from_dict(ours.to_dict() | {"cells": []})
        record.git_commit = ours.git_commit
        for key in FIXED_SETTINGS:  # a record from before a setting was kept gains it
            setattr(record, key, getattr(ours, key))
        record.merge(cells)
        write_search(path, record)
    return record


if __name__ == "__main__":  # python -m bench.search: the front end, which imports Hydra
    import sys

    from bench.search_launch import main

    sys.exit(main())
