"""``python -m bench.search search=lr method=lora,ia3 dataset=glue/sst2 <overrides>``: a search, both stages.

Each (model, method, dataset) cell of the grid (composed as ``python -m bench --multirun`` composes it,
experiment presets and comma lists included: :func:`bench.plan.expand_grid`) gets the trials of its
method family (:func:`bench.search.trials`, the same budget for every method). Both stages are ordinary
``python -m bench --multirun`` subprocesses, so ``hardware=slurm_*`` launchers work unchanged:

1. the trials, once each at ``search.trial_seed``, scored on the held-out validation split only
   (``eval.validation=true eval.test=false eval.max_validation_samples=<cap>``; the loss objective reads
   the training's validation loss and predicts nothing); then each cell's choice (:func:`bench.search.select`)
   is written to ``<paths.results_dir>/searches/<name>/search.json``;
2. ``search.final_seeds`` at each cell's chosen setting, and (``search.include_default``) at the default
   setting, which is the plain run (a learning-rate scale of 1.0 leaves the run key as it was), both with
   the usual test evaluation; search.json then lists the final runs' keys.

Run keys are computed from the composed configs (:func:`bench.config.run_key.run_key`), and only runs
that have not finished are launched: a relaunch continues where a search stopped and runs nothing twice.
A finished run is one that succeeded, or diverged (a seeded trial that diverged does so again); failed
runs are launched again, as ``python -m bench`` redoes them.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import CONF_DIR
from bench.errors import ConfigError
from bench.results import git_commit, read_result
from bench.search import (
    FINISHED,
    SUCCESS,
    CellRecord,
    SearchRecord,
    TrialRecord,
    budget_spent,
    cell_space,
    check_record,
    check_search,
    override_value,
    refused_overrides,
    save_cells,
    search_path,
    trials,
)

DONE = FINISHED  # statuses a relaunch leaves alone
STAGE_KEYS = ("eval.validation", "eval.test", "eval.max_validation_samples")  # set by stage 1
_ABSENT = object()
_SEARCH_KEY = re.compile(r"^(?:\+\+?|~)?search(?:[.@=]|$)")
_SEED_KEY = re.compile(r"^(?:\+\+?)?seed=")


@dataclass
class Run:
    """One run of a stage: its overrides (``key -> value`` as Hydra prints them) and where it writes."""

    overrides: dict[str, str]
    run_key: str
    run_dir: Path

    def status(self) -> str:
        record = read_result(self.run_dir / "result.json")
        return record.get("status", "missing") if record else "missing"


@dataclass
class Cell:
    """A (model, method, dataset) cell: its grid overrides (seed and search removed) and its trials."""

    overrides: dict[str, str]
    model: str
    method: str
    family: str
    dataset: str
    device: str
    space: dict[str, list[Any]]
    default: dict[str, Any]  # the cell's own values of the space's keys
    neutral: dict[str, str]  # the cell's own values of every key a stage sets, as overrides
    settings: list[dict[str, Any]] = field(default_factory=list)  # the trials' settings
    trials: list[tuple[dict[str, Any], Run]] = field(default_factory=list)


def multirun_blocks(runs: Sequence[dict[str, str]]) -> list[dict[str, list[str]]]:
    """Runs (override dicts) as few full grids as this greedy split finds: each block is ``key -> values``
    whose product is exactly some of the runs, so a ``--multirun`` over it launches nothing else.

    Runs with different keys go to different blocks; a set that is not a full grid is split by the value
    of its varying key with the fewest values (the first such key on a tie), recursively.
    """
    by_keys: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for run in runs:
        by_keys.setdefault(tuple(run), []).append(run)
    blocks: list[dict[str, list[str]]] = []
    for group in by_keys.values():
        blocks.extend(_grids(list({tuple(r.items()): r for r in group}.values())))
    return blocks


def _grids(runs: list[dict[str, str]]) -> list[dict[str, list[str]]]:
    values = {key: list(dict.fromkeys(run[key] for run in runs)) for key in runs[0]}
    if math.prod(len(v) for v in values.values()) == len(runs):
        return [values]
    split = min((k for k, v in values.items() if len(v) > 1), key=lambda k: len(values[k]))
    return [block for v in values[split] for block in _grids([r for r in runs if r[split] == v])]


def multirun_command(block: dict[str, list[str]]) -> list[str]:
    return [sys.executable, "-m", "bench", "--multirun", *(f"{k}={','.join(v)}" for k, v in block.items())]


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key, value


class Planner:
    """Composes the runs of a search with Hydra (inside an initialized config dir)."""

    def __init__(self, args: list[str]) -> None:
        from hydra.core.global_hydra import GlobalHydra
        from hydra.types import RunMode
        from omegaconf import OmegaConf

        hydra = GlobalHydra.instance().hydra
        master = hydra.compose_config("config", args, run_mode=RunMode.MULTIRUN, with_log_configuration=False)
        if master.get("search") is None:
            raise ConfigError(
                "no search given: add search=<name> (conf/search: "
                + ", ".join(sorted(p.stem for p in (CONF_DIR / "search").glob("*.yaml")))
                + "), e.g. python -m bench.search search=lr method=lora,ia3 dataset=glue/sst2"
            )
        self.search = OmegaConf.to_object(master.search)
        self.args = [a for a in args if not _SEARCH_KEY.match(a)]
        self.composer = None

    def check(self) -> None:
        """The search's settings and the user's overrides, before any cell is composed.

        Raises:
            ConfigError: a bad search setting, or an override of a key the search sets itself.
        """
        check_search(self.search)
        refused = refused_overrides(self.search, self.args)
        if refused:
            raise ConfigError("\n".join(refused))

    def stage_keys(self) -> list[str]:
        """Every key a stage sets: eval's and every family's space keys."""
        spaces = [self.search.space, *self.search.family_space.values()]
        return list(dict.fromkeys([*STAGE_KEYS, *(k for space in spaces for k in space)]))

    def run(self, cell: Cell, overrides: dict[str, str]) -> Run:
        """The run these overrides launch, with its run key computed from the composed config.

        Bench's composer reuses one config across calls and applies only the overrides given, so every
        call sets the same keys: the cell's own values of the stage keys, then the run's overrides.
        """
        from bench.config.run_key import run_key

        cfg = self.composer.compose([f"{k}={v}" for k, v in {**cell.neutral, **overrides}.items()])
        key = run_key(cfg)
        return Run(overrides, key, Path(str(cfg.paths.results_dir)) / key)

    def cells(self) -> list[Cell]:
        """The grid's cells with their trials; every family's budget checked before anything runs."""
        from omegaconf import OmegaConf

        from bench.plan import expand_grid

        search = self.search
        self.check()
        self.composer, grid = expand_grid([*self.args, f"seed={search.trial_seed}"])
        cells: list[Cell] = []
        errors: list[str] = []
        for overrides in grid:  # the grid's own cells first: all with the same keys
            base = dict(_split(o) for o in overrides if not _SEARCH_KEY.match(o))
            cfg = self.composer.compose([f"{k}={v}" for k, v in base.items()])
            family = str(cfg.method.family)
            values = {}
            for key in self.stage_keys():
                value = OmegaConf.select(cfg, key, default=_ABSENT)
                if value is not _ABSENT:
                    values[key] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            space = cell_space(search, family)
            cell = Cell(
                overrides={k: v for k, v in base.items() if not _SEED_KEY.match(f"{k}=")},
                model=str(cfg.model.name),
                method=str(cfg.method.name),
                family=family,
                dataset=str(cfg.dataset.name),
                device=str(cfg.hardware.device),
                space=space,
                default={k: values.get(k) for k in space},
                neutral={k: override_value(v) for k, v in values.items()},
            )
            if float(cfg.dataset.val_fraction) <= 0:
                errors.append(
                    f"{cell.model} / {cell.method} / {cell.dataset}: dataset.val_fraction=0 holds out no "
                    "validation rows, and a search scores its trials on them only; set it above 0"
                )
            try:
                cell.settings = trials(search, family)
            except ConfigError as err:
                errors.append(str(err))
                continue
            cells.append(cell)
        seen: dict[tuple[str, str, str], int] = {}
        for cell in cells:
            seen[(cell.model, cell.method, cell.dataset)] = (
                seen.get((cell.model, cell.method, cell.dataset), 0) + 1
            )
        errors += [
            f"{' / '.join(k)} appears {n} times in the grid: a search's cells are (model, method, dataset), "
            "so sweep other settings in separate searches (or set them on the command line)"
            for k, n in seen.items()
            if n > 1
        ]
        if errors:
            raise ConfigError("\n".join(dict.fromkeys(errors)))
        for cell in cells:
            cell.trials = [(s, self.run(cell, self._trial_overrides(cell, s))) for s in cell.settings]
        return cells

    def _trial_overrides(self, cell: Cell, settings: dict[str, Any]) -> dict[str, str]:
        search = self.search
        headline = search.objective == "headline"  # the loss objective needs no predictions at all
        out = dict(cell.overrides)
        out["seed"] = str(search.trial_seed)
        out["eval.validation"] = override_value(headline)
        out["eval.test"] = "false"
        out["eval.max_validation_samples"] = override_value(
            search.max_validation_samples if headline else None
        )
        out.update({k: override_value(v) for k, v in settings.items()})
        return out

    def final_runs(self, cell: Cell, chosen: dict[str, Any]) -> tuple[list[Run], list[Run]]:
        """Stage 2 of a cell: ``final_seeds`` at the chosen settings, and at the default (plain runs)."""
        tuned, default = [], []
        for seed in self.search.final_seeds:
            plain = {**cell.overrides, "seed": str(seed)}
            tuned.append(self.run(cell, {**plain, **{k: override_value(v) for k, v in chosen.items()}}))
            if self.search.include_default:
                default.append(self.run(cell, plain))
        return tuned, default


def run_multirun(command: list[str]) -> None:
    """One stage's multirun, its output passed through; the outcome is read from each run's result.json."""
    subprocess.run(command, check=False)


def launch(runs: Sequence[Run], stage: str) -> int:
    """Launch the runs that have not finished, in as few multiruns as :func:`multirun_blocks` finds.

    Returns the number of runs launched.
    """
    runs = list({r.run_key: r for r in runs}.values())  # tuned at the default setting: the plain run
    pending = [r for r in runs if r.status() not in DONE]
    if not runs:
        print(f"bench.search: {stage}: nothing to run", flush=True)
        return 0
    if not pending:
        print(f"bench.search: {stage}: all {len(runs)} runs had finished; nothing launched", flush=True)
        return 0
    blocks = multirun_blocks([r.overrides for r in pending])
    print(
        f"bench.search: {stage}: {len(pending)} of {len(runs)} runs in {len(blocks)} multirun(s)", flush=True
    )
    for block in blocks:
        command = multirun_command(block)
        print("bench.search: " + shlex.join(command), flush=True)
        run_multirun(command)
    return len(pending)


def cell_record(cell: Cell, objective: str) -> CellRecord:
    """The cell as its trials' result.json files say; the choice made on their validation objective once
    every trial has finished (a choice among some of them is not the search's: ``chosen`` stays None)."""
    record = CellRecord(cell.model, cell.method, cell.family, cell.dataset, cell.space, cell.default)
    record.trials = [
        TrialRecord.from_result(
            run.run_key, run.run_dir, s, read_result(run.run_dir / "result.json"), objective
        )
        for s, run in cell.trials
    ]
    if all(t.finished for t in record.trials):
        record.choose(objective, cell.device)
    else:
        record.budget_spent = budget_spent(record.trials, cell.device)
    return record


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def summary(record: SearchRecord, cells: Sequence[CellRecord], path: Path) -> str:
    lines = [
        f"search {record.search}: objective {record.objective} on the {record.objective_split} split, "
        f"{record.budget} trials per cell; record: {path}"
    ]
    for cell in cells:
        trials_text = ", ".join(
            " ".join(_fmt(v) for v in t.settings.values())
            + f": {_fmt(t.objective) if t.status == SUCCESS else t.status}"
            for t in cell.trials
        )
        lines.append(f"  {cell.model} / {cell.method} / {cell.dataset}: {trials_text}")
        rows = sorted({(t.validation_n, t.validation_n_available) for t in cell.trials if t.validation_n})
        if rows:
            text = ", ".join(f"{n} of {available}" for n, available in rows)
            cap = "none" if record.max_validation_samples is None else record.max_validation_samples
            lines.append(f"    validation rows {text}, cap {cap}")
        finished = sum(t.finished for t in cell.trials)
        if finished < len(cell.trials):
            lines.append(
                f"    chosen: none (stage 1 incomplete: {finished} of {len(cell.trials)} trials finished; "
                "relaunch to finish them): no final runs"
            )
        elif cell.chosen is None:
            lines.append("    chosen: none (no trial succeeded): no final runs")
        else:
            edge = f"; at the edge of its range: {', '.join(cell.at_edge)}" if cell.at_edge else ""
            chosen = ", ".join(f"{k}={_fmt(v)}" for k, v in cell.chosen.items())
            lines.append(
                f"    chosen: {chosen} (objective {_fmt(cell.chosen_objective)}, learning rate "
                f"{_fmt(cell.chosen_learning_rate)}){edge}"
            )
        spent = cell.budget_spent
        lines.append(
            f"    budget spent: {spent['trials']} trials ({spent['trials_succeeded']} succeeded), "
            f"{spent['wall_time_s']:.1f} s, {spent['device_hours']:.4f} {spent['device']}-hours"
        )
    return "\n".join(lines)


def dry_run(cells: Sequence[Cell]) -> str:
    """What stage 1 would run: each cell's trials with their run keys and statuses."""
    lines = []
    for cell in cells:
        lines.append(
            f"{cell.model} / {cell.method} ({cell.family}) / {cell.dataset}: {len(cell.trials)} trials"
        )
        for settings, run in cell.trials:
            text = " ".join(f"{k}={override_value(v)}" for k, v in settings.items())
            lines.append(f"  {text}: {run.status()}  {run.run_key}")
    return "\n".join(lines)


def run_search(planner: Planner, cells: list[Cell]) -> int:
    """Both stages; returns the exit status (1 where a run did not finish)."""
    search = planner.search
    trial_runs = [run for cell in cells for _, run in cell.trials]
    results_dirs = {str(run.run_dir.parent) for run in trial_runs}
    if len(results_dirs) != 1:
        raise ConfigError(f"the grid writes to several paths.results_dir ({sorted(results_dirs)}): use one")
    path = search_path(results_dirs.pop(), search.name)
    ours = SearchRecord.from_config(search, git_commit=git_commit())
    check_record(path, ours)  # before anything runs: one record holds one search's settings
    launched = launch(trial_runs, "stage 1 (trials, validation only)")
    records = [cell_record(cell, search.objective) for cell in cells]
    save_cells(path, ours, records)  # re-read under a lock: another grid's cells written meanwhile stay

    final_runs: list[Run] = []
    for cell, cell_rec in zip(cells, records, strict=True):
        if cell_rec.chosen is None:
            continue
        tuned, default = planner.final_runs(cell, cell_rec.chosen)
        cell_rec.final = {"tuned": [r.run_key for r in tuned], "default": [r.run_key for r in default]}
        final_runs += tuned + default
    launched += launch(final_runs, "stage 2 (final seeds, test split)")
    record = save_cells(path, ours, records)

    print(summary(record, records, path))
    final_runs = list({r.run_key: r for r in final_runs}.values())  # tuned at the default: the plain run
    unfinished = [r for r in [*trial_runs, *final_runs] if r.status() not in DONE]
    no_choice = [c for c in records if c.chosen is None]
    diverged = sum(r.status() == "diverged" for r in [*trial_runs, *final_runs])
    ran = "ran nothing: every run had finished" if not launched else f"launched {launched} runs"
    print(
        f"bench.search: {ran}"
        f"; {len(trial_runs)} trials, {len(final_runs)} final runs; diverged {diverged}, "
        f"not finished {len(unfinished)}, cells without a choice {len(no_choice)}"
    )
    for run in unfinished:
        print(f"  {run.status()}: {run.run_key} (log: {run.run_dir / 'bench.log'})")
    return 1 if unfinished or no_choice else 0


def main(argv: list[str] | None = None) -> int:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench.config.choices import checked_overrides
    from bench.config.run_key import register_resolver
    from bench.config.schema import register_configs

    parser = argparse.ArgumentParser(
        prog="python -m bench.search",
        usage="python -m bench.search [--dry-run] search=<name> [bench overrides, comma lists]",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--multirun", "-m", action="store_true", help="accepted and ignored")
    parser.add_argument(
        "--dry-run", action="store_true", help="list the trials and their status, run nothing"
    )
    opts, args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    unknown = [a for a in args if a.startswith("-")]
    if unknown:
        parser.error(f"unrecognised options: {' '.join(unknown)}")
    seeds = [a for a in args if _SEED_KEY.match(a)]
    if seeds:
        print(
            f"bench.search: {seeds[0]}: a search sets the seeds itself (search.trial_seed for the trials, "
            "search.final_seeds for the final runs); remove it",
            file=sys.stderr,
        )
        return 2
    args = checked_overrides(args, "bench.search")
    if args is None:
        return 2
    register_configs()
    register_resolver()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            planner = Planner(args)
            cells = planner.cells()
        except ConfigError as err:
            print(f"bench.search: {err}", file=sys.stderr)
            return 2
        except Exception as err:  # noqa: BLE001  (Hydra's composition errors: an override that is wrong)
            print(f"bench.search: the grid does not compose: {type(err).__name__}: {err}", file=sys.stderr)
            return 2
        if opts.dry_run:
            print(dry_run(cells))
            return 0
        try:
            return run_search(planner, cells)
        except ConfigError as err:
            print(f"bench.search: {err}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
