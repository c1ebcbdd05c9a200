"""The search tables (``python -m bench.search``, conf/search): default vs tuned, side by side, with budgets.

Read from the ``search.json`` files under the results folders (one cell per (model, method, dataset): its
trials, the chosen setting, the budget spent, the run keys of the final runs) and from the final runs'
records, matched by run key (never by folder name):

- ``search``: per (search, model, method, dataset) the default setting's test score and the tuned one's
  (mean ±std over the final seeds, x100, ddof=1), their difference, the chosen values and learning rate,
  the trials' validation objectives (the chosen one marked), the validation rows the trials predicted
  (``cap`` where ``eval.max_validation_samples`` cut the held-out split), an edge flag (the best trial
  sits at the smallest or largest value of its range: the space should be wider) and the cell's budget
  (trials run and succeeded, device-hours and wall-hours of stage 1);
- ``search_budget``: per (search, model, method) the trials and hours summed over its datasets, and its
  final runs. Every method gets the same number of trials per cell (the fairness claim); a method with
  another count, or searched on fewer datasets than its siblings, is flagged.

The final runs' scores carry the marks of the other tables (:class:`multirun_analysis.paper_tables.
CellMarks`): ``cap`` (``dataset.max_eval_samples`` cut the test split), ``inv`` (their mean invalid-answer
rate) and ``+k failed`` / ``diverged`` / ``not scored`` / ``missing`` (a run key of search.json without
a record): a final run that counts in no mean is named, never dropped.

Search trials are runs with ``test_evaluated`` false (validation only): the other tables leave them out
(:func:`multirun_analysis.records.load_runs` counts them in ``runs.attrs["search_trials"]``) and these
tables show them.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.search import SEARCH_FILE  # the record bench.search writes (no torch, no Hydra)
from multirun_analysis import render
from multirun_analysis.paper_tables import CellMarks, marks_of, pooled
from multirun_analysis.render import DASH, ESCAPE, MARKS

EDGE_NOTE = "best trial at the edge of the range: widen the space"
CELL_KEYS = ("search", "model", "method", "dataset")

MARKS_LEGEND = (
    "After a final score: cap: dataset.max_eval_samples cut the test split; inv: the mean invalid-answer "
    "rate of the scored runs (shown above 0); +k failed, diverged, running, not scored or missing (no "
    "record of a run key in search.json): final runs that count in no mean."
)
SEARCH_CAPTION = (
    "Default vs tuned: test headline x100, mean ±std over the final seeds (n seeds), tuned − default; "
    "chosen: the setting whose trial scored best on the validation split (the objective), with its "
    "learning rate; trials: each trial's validation objective (x100 for a headline, the loss as is), the "
    "chosen one in bold; val. rows: the validation rows the trials predicted (cap: "
    "eval.max_validation_samples cut the held-out split; –: none, as for the loss objective); edge: "
    f"{EDGE_NOTE}; budget: stage-1 trials run/asked (succeeded), device-hours and wall-hours of the "
    f"trials. {MARKS_LEGEND}"
)
BUDGET_CAPTION = (
    "Budget per method: stage-1 trials summed over its datasets (succeeded), device-hours and wall-hours. "
    "Every method gets the same trials per dataset; flagged: a method with another count or searched on "
    "fewer datasets than its siblings. final runs: n = its scored final runs (default and tuned, each "
    f"run once). {MARKS_LEGEND}"
)


# --- reading --------------------------------------------------------------------------------------------


def find_searches(roots: Iterable[str | Path]) -> list[Path]:
    """Every search.json under ``roots``, each file once."""
    files: dict[Path, Path] = {}
    for root in roots:
        root = Path(root)
        for path in sorted(root.rglob(SEARCH_FILE)) if root.exists() else []:
            files.setdefault(path.resolve(), path)
    return list(files.values())


def read_cells(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """One dict per searched cell: the cell with its search's fields (``search``, ``objective``,
    ``budget``, ``max_validation_samples``, ``final_seeds``, ``updated_at``) and ``path``. A cell found in
    several files (a copied folder) counts once: the most recently updated."""
    cells: dict[tuple, dict[str, Any]] = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            print(f"multirun_analysis: skipped {path}: not readable JSON ({err})", file=sys.stderr)
            continue
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            print(f"multirun_analysis: skipped {path}: not a search record (no 'cells')", file=sys.stderr)
            continue
        fields = ("search", "objective", "budget", "max_validation_samples", "final_seeds", "updated_at")
        top = {k: data.get(k) for k in fields}
        for cell in data["cells"]:
            row = {**cell, **top, "path": str(path)}
            key = tuple(str(row.get(k)) for k in CELL_KEYS)
            if key not in cells or str(row["updated_at"] or "") > str(cells[key]["updated_at"] or ""):
                cells[key] = row
    return [cells[k] for k in sorted(cells)]


def read_records(roots: Iterable[str | Path], keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """run key -> result.json under ``roots`` for the run keys ``keys`` (the trials, which the runs table
    leaves out, and the final runs): matched by run key, never by folder name. A successful record wins
    over another of the same key."""
    keys, found = set(keys), {}
    for root in roots:
        root = Path(root)
        for path in sorted(root.rglob("result.json")) if root.exists() else []:
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # load_runs names the damaged file
            key = record.get("run_key") if isinstance(record, dict) else None
            if key in keys and (key not in found or found[key].get("status") != "success"):
                found[key] = record
    return found


# --- the tables -----------------------------------------------------------------------------------------


def _scores(runs: pd.DataFrame, keys: Iterable[str]) -> tuple[float, float, int]:
    """(mean x100, std x100 with ddof=1, n) of the successful, scored runs among ``keys``."""
    keys = set(keys or ())
    ok = runs[runs["run_key"].isin(keys) & (runs["status"] == "success") & runs["headline_value"].notna()]
    values = ok["headline_value"].to_numpy(float) * 100
    if not len(values):
        return np.nan, np.nan, 0
    return values.mean(), values.std(ddof=1) if len(values) > 1 else np.nan, len(values)


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def _settings_text(settings: dict[str, Any] | None, with_keys: bool) -> str:
    if not settings:
        return DASH
    if not with_keys and len(settings) == 1:
        return _value(next(iter(settings.values())))
    return ", ".join(f"{_short(k)}={_value(v)}" for k, v in settings.items())


def _edges(cell: dict[str, Any]) -> str:
    """``learning_rate_scale (high)`` for each key whose chosen value is its range's largest (or low)."""
    chosen, space, parts = cell.get("chosen") or {}, cell.get("space") or {}, []
    for key in cell.get("at_edge") or []:
        values = [v for v in space.get(key, []) if isinstance(v, int | float)]
        side = ""
        if values and key in chosen:
            side = " (high)" if chosen[key] == max(values) else " (low)" if chosen[key] == min(values) else ""
        parts.append(f"{_short(key)}{side}")
    return ", ".join(parts)


def _default_learning_rate(cell: dict[str, Any]) -> float | None:
    default = cell.get("default") or {}
    for trial in cell.get("trials") or []:
        if trial.get("settings") == default and trial.get("learning_rate") is not None:
            return float(trial["learning_rate"])
    return None


def _final_marks(runs: pd.DataFrame, keys: Iterable[str], records: dict[str, dict] | None) -> CellMarks:
    """The marks of the final runs ``keys`` (in each run's convention); a key with no record under the
    results folders (``records``; without them: none among ``runs``) is ``missing``."""
    keys = set(keys or ())
    mine = runs[runs["run_key"].isin(keys)]
    known = set(records) if records is not None else set(mine["run_key"])
    return marks_of(mine, None, missing=len(keys - known - set(mine["run_key"])))


def _validation_rows(cell: dict[str, Any], records: dict[str, dict]) -> tuple[float, float, bool]:
    """(most validation rows a trial predicted, the cap, whether the cap cut the held-out split) from the
    trials' records (``validation``: n, n_available, cap); the cap falls back to the search's."""
    blocks = [(records.get(t.get("run_key")) or {}).get("validation") or {} for t in cell.get("trials") or []]
    rows = [b["n"] for b in blocks if isinstance(b.get("n"), int)]
    caps = [b["cap"] for b in blocks if isinstance(b.get("cap"), int)]
    cap = max(caps) if caps else cell.get("max_validation_samples")
    capped = any(
        isinstance(b.get("n"), int)
        and (
            b["n"] < b["n_available"]
            if isinstance(b.get("n_available"), int)
            else b["n"] >= (cap or math.inf)
        )
        for b in blocks
    )
    return (max(rows) if rows else np.nan), (cap if isinstance(cap, int) else np.nan), capped


def _mark_fields(prefix: str, m: CellMarks) -> dict[str, Any]:
    return {
        f"{prefix}_capped": m.capped,
        f"{prefix}_invalid_rate": m.invalid_rate,
        f"{prefix}_n_rated": m.n_rated,
        f"{prefix}_not_scored": m.not_scored,
        f"{prefix}_not_scored_status": m.not_scored_status,
    }


def _marks_from(row, prefix: str, n: int) -> CellMarks:
    status = row[f"{prefix}_not_scored_status"]
    return CellMarks(
        n_seeds=int(n),
        capped=bool(row[f"{prefix}_capped"]),
        invalid_rate=float(row[f"{prefix}_invalid_rate"]),
        n_rated=int(row[f"{prefix}_n_rated"]),
        not_scored=int(row[f"{prefix}_not_scored"]),
        not_scored_status=status if isinstance(status, str) else "",
    )


def search_table(
    runs: pd.DataFrame, cells: list[dict[str, Any]], records: dict[str, dict] | None = None
) -> pd.DataFrame:
    """One row per searched (search, model, method, dataset): numbers, not display strings. ``records``
    (:func:`read_records` of the cells' trials and final runs) gives the trials' validation rows and tells
    a missing final run (no record) from one left out of ``runs``."""
    records = {} if records is None else records
    rows = []
    for cell in cells:
        final = cell.get("final") or {}
        d_mean, d_std, d_n = _scores(runs, final.get("default"))
        t_mean, t_std, t_n = _scores(runs, final.get("tuned"))
        found = records if records else None
        d_marks = _final_marks(runs, final.get("default"), found)
        t_marks = _final_marks(runs, final.get("tuned"), found)
        both = _final_marks(runs, {*(final.get("default") or ()), *(final.get("tuned") or ())}, found)
        val_n, val_cap, val_capped = _validation_rows(cell, records)
        spent = cell.get("budget_spent") or {}
        trials = cell.get("trials") or []
        n_trials = spent.get("trials", len(trials))
        succeeded = spent.get("trials_succeeded", sum(t.get("status") == "success" for t in trials))
        wall = spent.get("wall_time_s")
        rows.append(
            {
                **{k: cell.get(k) for k in CELL_KEYS},
                "objective": cell.get("objective"),
                "default_mean": d_mean,
                "default_std": d_std,
                "default_n": d_n,
                "tuned_mean": t_mean,
                "tuned_std": t_std,
                "tuned_n": t_n,
                "difference": t_mean - d_mean,
                "tuned_is_default": bool(cell.get("chosen")) and cell.get("chosen") == cell.get("default"),
                "chosen": json.dumps(cell.get("chosen"), sort_keys=True),
                "chosen_objective": cell.get("chosen_objective"),
                "default_learning_rate": _default_learning_rate(cell),
                "chosen_learning_rate": cell.get("chosen_learning_rate"),
                "at_edge": _edges(cell),
                "budget": cell.get("budget"),
                "trials": n_trials,
                "trials_succeeded": succeeded,
                "device_hours": spent.get("device_hours"),
                "wall_hours": wall / 3600 if isinstance(wall, int | float) else None,
                "device": spent.get("device"),
                **_mark_fields("default", d_marks),
                **_mark_fields("tuned", t_marks),
                "final_n": both.n_seeds,
                **_mark_fields("final", both),
                "validation_n": val_n,
                "validation_cap": val_cap,
                "validation_capped": val_capped,
            }
        )
    return pd.DataFrame(rows, columns=[*CELL_KEYS, *_NUMERIC_COLUMNS])


_MARKS = ("capped", "invalid_rate", "n_rated", "not_scored", "not_scored_status")
_NUMERIC_COLUMNS = [
    "objective",
    "default_mean",
    "default_std",
    "default_n",
    "tuned_mean",
    "tuned_std",
    "tuned_n",
    "difference",
    "tuned_is_default",
    "chosen",
    "chosen_objective",
    "default_learning_rate",
    "chosen_learning_rate",
    "at_edge",
    "budget",
    "trials",
    "trials_succeeded",
    "device_hours",
    "wall_hours",
    "device",
    *(f"{p}_{m}" for p in ("default", "tuned") for m in _MARKS),
    "final_n",
    *(f"final_{m}" for m in _MARKS),
    "validation_n",
    "validation_cap",
    "validation_capped",
]


def budget_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (search, model, method): datasets, trials (asked: budget x datasets), succeeded, hours, flag,
    and its final runs (each run once; a run shared by two datasets' cells cannot be: a run has one
    dataset) with their marks."""
    rows = []
    for (search, model), siblings in table.groupby(["search", "model"], sort=True):
        all_datasets = set(siblings["dataset"])
        for method, group in siblings.groupby("method", sort=True):
            asked = int(pd.to_numeric(group["budget"], errors="coerce").fillna(0).sum())
            flags = [
                f"{int(r.trials)} of {int(r.budget)} trials on {r.dataset}"
                for r in group.itertuples()
                if r.trials != r.budget
            ]
            if len(set(group["dataset"])) < len(all_datasets):
                flags.append(f"searched {len(set(group['dataset']))} of {len(all_datasets)} datasets")
            final = pooled((_marks_from(r, "final", r["final_n"]) for _, r in group.iterrows()), seeds=sum)
            rows.append(
                {
                    "search": search,
                    "model": model,
                    "method": method,
                    "datasets": len(group),
                    "trials": int(group["trials"].sum()),
                    "trials_asked": asked,
                    "trials_succeeded": int(group["trials_succeeded"].sum()),
                    "device_hours": pd.to_numeric(group["device_hours"], errors="coerce").sum(min_count=1),
                    "wall_hours": pd.to_numeric(group["wall_hours"], errors="coerce").sum(min_count=1),
                    "unequal": "; ".join(flags),
                    "final_n": final.n_seeds,
                    **_mark_fields("final", final),
                }
            )
    cols = ["search", "model", "method", "datasets", "trials", "trials_asked", "trials_succeeded"]
    marks = ["final_n", *(f"final_{m}" for m in _MARKS)]
    return pd.DataFrame(rows, columns=[*cols, "device_hours", "wall_hours", "unequal", *marks])


# --- display --------------------------------------------------------------------------------------------


def _num(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _score_text(mean, std, n, marks: CellMarks | None = None) -> str:
    text = DASH if not n else f"{mean:.1f}" + (f" ±{std:.1f}" if _num(std) else "") + f" n={n}"
    extra = marks.text() if marks is not None else ""
    return f"{text} {extra}" if extra else text


def _validation_text(row) -> str:
    """``n=200 cap`` (rows the trials predicted), ``cap 200`` (rows unknown), else a dash."""
    n, cap = row["validation_n"], row["validation_cap"]
    if _num(n):
        return f"n={int(n)}" + (" cap" if row["validation_capped"] else "")
    return f"cap {int(cap)}" if _num(cap) else DASH


def _hours(value) -> str:
    return f"{value:.3g}" if _num(value) else DASH


def _objective_text(value, objective: str | None) -> str:
    if not _num(value):
        return DASH
    return f"{value:.3g}" if objective == "loss" else f"{value * 100:.1f}"


def _trials_text(cell: dict[str, Any], fmt: str) -> str:
    """``0.1: 71.2, 0.316: 80.1, **3.16: 88.2**, 10: failed`` in the order of the space's values."""
    esc, (bold, _) = ESCAPE[fmt], MARKS[fmt]
    space = cell.get("space") or {}
    order = {k: {json.dumps(v): i for i, v in enumerate(vals)} for k, vals in space.items()}

    def rank(trial):
        settings = trial.get("settings") or {}
        return [order.get(k, {}).get(json.dumps(v), len(order)) for k, v in settings.items()]

    parts = []
    for trial in sorted(cell.get("trials") or [], key=rank):
        settings = trial.get("settings") or {}
        status = trial.get("status")
        shown = _objective_text(trial.get("objective"), cell.get("objective"))
        text = esc(f"{_settings_text(settings, len(space) > 1)}: {shown if status == 'success' else status}")
        parts.append(bold.format(text) if cell.get("chosen") and settings == cell["chosen"] else text)
    return ", ".join(parts) if parts else DASH


def _chosen_text(cell: dict[str, Any], row: pd.Series) -> str:
    if not cell.get("chosen"):
        return "none (no trial has an objective)"
    text = _settings_text(cell["chosen"], True)
    lr, default_lr = row["chosen_learning_rate"], row["default_learning_rate"]
    if _num(lr):
        text += f" (lr {lr:.3g}, default {default_lr:.3g})" if _num(default_lr) else f" (lr {lr:.3g})"
    return text + (" = default" if row["tuned_is_default"] else "")


_SCORE = {k: [f"{k}_mean", f"{k}_std", f"{k}_n"] for k in ("default", "tuned")}


def search_frame(table: pd.DataFrame, cells: list[dict[str, Any]], fmt: str = "markdown") -> pd.DataFrame:
    esc = ESCAPE[fmt]
    rows = []
    for (_, row), cell in zip(table.iterrows(), cells, strict=True):
        diff = row["difference"]
        rows.append(
            {
                "model": esc(row["model"]),
                "method": esc(row["method"]),
                "dataset": esc(row["dataset"]),
                "search": esc(f"{row['search']} ({row['objective']})"),
                "default": esc(
                    _score_text(*row[_SCORE["default"]], _marks_from(row, "default", row["default_n"]))
                ),
                "tuned": esc(_score_text(*row[_SCORE["tuned"]], _marks_from(row, "tuned", row["tuned_n"]))),
                esc("tuned − default"): esc(f"{diff:+.1f}" if _num(diff) else DASH),
                "chosen": esc(_chosen_text(cell, row)),
                esc("trials (validation)"): _trials_text(cell, fmt),
                "val. rows": esc(_validation_text(row)),
                "edge": esc(f"edge: {row['at_edge']}" if row["at_edge"] else ""),
                "budget": esc(f"{row['trials']}/{row['budget']} ({row['trials_succeeded']} ok)"),
                "device-h": esc(_hours(row["device_hours"])),
                "wall-h": esc(_hours(row["wall_hours"])),
            }
        )
    return pd.DataFrame(rows)


def _runs_text(marks: CellMarks) -> str:
    """``n=9 cap inv 10.0% +1 failed``: the scored runs and their marks."""
    return " ".join(filter(None, (f"n={marks.n_seeds}", marks.text())))


def budget_frame(table: pd.DataFrame, fmt: str = "markdown") -> pd.DataFrame:
    esc = ESCAPE[fmt]
    rows = []
    for r in table.itertuples():
        rows.append(
            {
                "model": esc(r.model),
                "method": esc(r.method),
                "search": esc(r.search),
                "datasets": str(r.datasets),
                "trials": esc(f"{r.trials}/{r.trials_asked} ({r.trials_succeeded} ok)"),
                "device-h": esc(_hours(r.device_hours)),
                "wall-h": esc(_hours(r.wall_hours)),
                "unequal": esc(r.unequal),
                "final runs": esc(_runs_text(_marks_from(r._asdict(), "final", r.final_n))),
            }
        )
    return pd.DataFrame(rows)


# --- the entry point ------------------------------------------------------------------------------------


def trials_note(runs: pd.DataFrame) -> str:
    n = int(runs.attrs.get("search_trials", 0))
    return f"search trials (validation only, no test score): {n}, shown in the search table" if n else ""


def write_search_tables(
    runs: pd.DataFrame, roots: Iterable[str | Path], out: Path
) -> list[tuple[str, str, str]]:
    """Write ``search.{md,tex,csv}`` and ``search_budget.{md,tex,csv}`` under ``out`` when the folders
    hold search.json files; return (name, Markdown, HTML fragment) per table. Without any search.json
    but with search trials among the runs, one ``search`` entry says so (they are never dropped
    silently)."""
    roots = list(roots)
    cells = read_cells(find_searches(roots))
    note = trials_note(runs)
    if not cells:
        if not note:
            return []
        text = f"{note}; no {SEARCH_FILE} found under the results folders"
        return [("search", text, f"<p>{render.ESCAPE['html'](text)}</p>")]
    keys = {t.get("run_key") for c in cells for t in c.get("trials") or []}
    keys |= {k for c in cells for ks in (c.get("final") or {}).values() for k in ks or ()}
    table = search_table(runs, cells, read_records(roots, keys))
    budget = budget_table(table)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "search.csv", index=False)
    budget.to_csv(out / "search_budget.csv", index=False)
    entries = []
    note_md = f"\n\n{note}" if note else ""
    for name, frame, caption in (
        ("search", lambda fmt: search_frame(table, cells, fmt), SEARCH_CAPTION),
        ("search_budget", lambda fmt: budget_frame(budget, fmt), BUDGET_CAPTION),
    ):
        md = render.markdown(frame("markdown")) + "\n\n" + caption + (note_md if name == "search" else "")
        (out / f"{name}.md").write_text(md + "\n")
        (out / f"{name}.tex").write_text(render.latex(frame("latex"), caption, f"tab:{name}"))
        html = frame("html").to_html(index=False, escape=False) + f"<p>{render.ESCAPE['html'](caption)}</p>"
        if name == "search" and note:
            html += f"<p>{render.ESCAPE['html'](note)}</p>"
        entries.append((name, md, html))
    return entries
