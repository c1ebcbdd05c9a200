"""Render the tables: Markdown (best **bold**, second <u>underlined</u>), HTML, LaTeX (booktabs,
\\textbf / \\underline, every text escaped) and tidy CSV.

A performance cell reads ``81.2 ±8.8 [75.0, 87.5]† n=2×8 cap inv 12.5% +1 failed``: mean ± std over
seeds, the 95% CI († where it also resamples test examples), seeds × test examples (``cap`` when
``dataset.max_eval_samples`` cut the test split), the mean invalid-answer rate when any, and the runs of
the cell that count in no mean (failed, diverged, NaN headline).
"""

from __future__ import annotations

import html
import math
import re

import pandas as pd

from multirun_analysis.stats import LEVEL

DASH = "–"
MARKDOWN = ("**{}**", "<u>{}</u>")
HTML = ("<b>{}</b>", "<u>{}</u>")
LATEX = ("\\textbf{{{}}}", "\\underline{{{}}}")

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "±": r"$\pm$",
    "×": r"$\times$",
    "†": r"$^\dagger$",
    "–": r"--",
    "−": r"$-$",
}


def latex_escape(text) -> str:
    return re.sub("|".join(map(re.escape, _LATEX_SPECIAL)), lambda m: _LATEX_SPECIAL[m.group()], str(text))


def _plain(text) -> str:
    return str(text)


ESCAPE = {"markdown": _plain, "html": html.escape, "latex": latex_escape}
MARKS = {"markdown": MARKDOWN, "html": HTML, "latex": LATEX}


def human_count(value) -> str:
    """1751040 -> 1.75M, 57600 -> 57.6K, 0 -> 0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    value = float(value)
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.0f}"


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    return f"{float(value):.{digits}f}"


def _num(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def cell_text(c) -> str:
    """One performance cell (a row of :func:`tables.cell_stats`), unformatted."""
    parts = []
    if c["n_seeds"]:
        parts.append(_fmt(c["mean"], 1))
        if _num(c["std"]):
            parts.append(f"±{_fmt(c['std'], 1)}")
        if _num(c["ci_low"]):
            dagger = "†" if c["ci_kind"] == "seeds+examples" else ""
            parts.append(f"[{_fmt(c['ci_low'], 1)}, {_fmt(c['ci_high'], 1)}]{dagger}")
        n_test = int(c["n_test"]) if _num(c["n_test"]) else "?"
        parts.append(f"n={int(c['n_seeds'])}×{n_test}")
        if _num(c["cap"]) and _num(c["n_test"]) and int(c["n_test"]) >= int(c["cap"]):
            parts.append("cap")
        if _num(c["invalid_rate"]) and c["invalid_rate"] > 0:
            parts.append(f"inv {c['invalid_rate']:.1f}%")
    if c["not_scored"]:
        parts.append(f"+{int(c['not_scored'])} {c['not_scored_status']}")
    return " ".join(parts) if parts else DASH


def headline_names(runs: pd.DataFrame) -> dict[str, str]:
    """Per dataset, its headline metric (every metric used, if runs disagree)."""
    names = runs.dropna(subset=["headline_metric"]).groupby("dataset")["headline_metric"]
    return {d: "/".join(sorted(set(m))) for d, m in names}


def performance_frame(perf: pd.DataFrame, cells: pd.DataFrame, marks: dict, metrics: dict, fmt="markdown"):
    """Display strings: one row per (model, variant), params, one column per dataset (with its metric)."""
    esc, (bold, under) = ESCAPE[fmt], MARKS[fmt]
    out = pd.DataFrame({"model": [esc(m) for m, _ in perf.index], "method": [esc(v) for _, v in perf.index]})
    out["params"] = [human_count(v) for v in perf[("", "params")]]
    for _group, dataset in perf.columns[1:]:
        shown = []
        for model, label in perf.index:
            mark = marks.get((model, dataset))
            key = (model, label, dataset)
            text = esc(cell_text(cells.loc[key])) if key in cells.index else DASH
            if mark is not None and (model, label) == mark.best and mark.significant:
                text = bold.format(text)
            elif mark is not None and (model, label) == mark.second:
                text = under.format(text)
            shown.append(text)
        out[esc(f"{dataset} ({metrics.get(dataset, '?')})")] = shown
    return out


def performance_caption(cells: pd.DataFrame, marks: dict) -> str:
    tested = sum(1 for m in marks.values() if m.test is not None)
    units = {m.test.unit for m in marks.values() if m.test is not None}
    unit = " and ".join(
        {"examples": "per-example headline scores", "seeds": "headline per seed"}[u] for u in sorted(units)
    )
    kinds = set(cells["ci_kind"]) if len(cells) else set()
    ci = "95% CI by bootstrap over seeds" + (
        "; † also over test examples within seeds (predictions.jsonl)" if "seeds+examples" in kinds else ""
    )
    return (
        f"Headline metric x100: mean ±std over seeds [{ci}] n=seeds×test examples (cap: the test split "
        "was capped), inv: invalid-answer rate, +k: runs not scored. Best and second are ranked among "
        "each model's rows per dataset. Bold: best, and better than the runner-up (the difference "
        f"favours the best) in a paired permutation test ({unit or 'none run'}) at {LEVEL} after Holm "
        f"over {tested} (model, dataset) pair(s); underlined: second; ties marked neither."
    )


def markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True)


def latex(frame: pd.DataFrame, caption: str, label: str = "") -> str:
    """A booktabs table of already escaped cells and headers (one header row)."""
    cols = "ll" + "r" * (len(frame.columns) - 2)
    lines = ["\\begin{table}", "\\centering", f"\\caption{{{latex_escape(caption)}}}"]
    if label:
        lines.append(f"\\label{{{label}}}")
    lines += [f"\\begin{{tabular}}{{{cols}}}", "\\toprule", " & ".join(map(str, frame.columns)) + " \\\\"]
    lines.append("\\midrule")
    lines += [" & ".join(map(str, row)) + " \\\\" for row in frame.itertuples(index=False)]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def stability_frame(std: pd.DataFrame, n: pd.DataFrame, cells: pd.DataFrame, fmt="markdown") -> pd.DataFrame:
    esc = ESCAPE[fmt]
    out = pd.DataFrame({"model": [esc(m) for m, _ in std.index], "method": [esc(v) for _, v in std.index]})
    for col in std.columns:
        shown = []
        for (model, label), s, count in zip(std.index, std[col], n[col], strict=True):
            key = (model, label, col[1])
            if pd.isna(count) or key not in cells.index:
                shown.append("")
                continue
            c = cells.loc[key]
            n_test = int(c["n_test"]) if _num(c["n_test"]) else "?"
            extra = " cap" if _num(c["cap"]) and n_test != "?" and n_test >= int(c["cap"]) else ""
            extra += (
                f" inv {c['invalid_rate']:.1f}%" if _num(c["invalid_rate"]) and c["invalid_rate"] > 0 else ""
            )
            extra += f" +{int(c['not_scored'])} {c['not_scored_status']}" if c["not_scored"] else ""
            shown.append(esc(f"{_fmt(s, 1)} (n={int(count)}×{n_test}{extra})"))
        out[esc(col[1])] = shown
    return out


STABILITY_CAPTION = (
    "Standard deviation over seeds (x100, ddof=1); n=seeds×test examples, cap: test split capped, "
    "inv: invalid-answer rate, +k: runs not scored."
)


def pscp_frame(table: pd.DataFrame, fmt="markdown") -> pd.DataFrame:
    from multirun_analysis.tables import ranks

    esc, (bold, under) = ESCAPE[fmt], MARKS[fmt]
    out = table.reset_index()
    marked = {}  # ranked within each model, as the performance table
    for _model, mine in table["pscp"].groupby(level="model", sort=False):
        best, second = ranks(mine)
        marked.update({best: bold, second: under})
    marked.pop(None, None)
    shown = pd.DataFrame({"model": [esc(m) for m in out["model"]], "method": [esc(m) for m in out["method"]]})
    shown["performance"] = [_fmt(v, 1) for v in out["performance"]]
    shown["params"] = [human_count(v) for v in out["trainable_params"]]
    for col in ("f_params", "f_flops", "f_memory"):
        shown[esc(col)] = [_fmt(v, 3) for v in out[col]]
    for col in ("n_datasets", "n_test", "cap", "invalid_rate", "not_scored"):
        if col in out:
            shown[esc(col)] = [_fmt(v, 0 if col != "invalid_rate" else 1) for v in out[col]]
    shown_marks = []
    for idx, value in table["pscp"].items():
        text = _fmt(value, 1)
        shown_marks.append(marked[idx].format(text) if idx in marked else text)
    shown["PSCP"] = shown_marks
    return shown


PSCP_CAPTION = (
    "PSCP: performance (x100, mean over datasets of the mean over seeds) penalised by cost; memory is the "
    "mean over runs. A row missing a dataset that another row of its model has gets no performance or "
    "PSCP (–) and no rank. n_datasets: datasets scored, n_test: fewest test examples of any dataset, "
    "cap: the tightest test cap (dataset.max_eval_samples; – none), invalid_rate: mean invalid-answer "
    "rate (%), not_scored: runs that count in no mean. Best in bold, second underlined, within each "
    "model (no test: PSCP is not per example); ties marked neither."
)


def compare_frame(table: pd.DataFrame, fmt="markdown") -> pd.DataFrame:
    esc = ESCAPE[fmt]
    if table.empty:
        return pd.DataFrame()
    rows = []
    for r in table.itertuples():
        rows.append(
            {
                "model": esc(r.model),
                "dataset": esc(r.dataset),
                "A": esc(r.a),
                "B": esc(r.b),
                "mean A": _fmt(r.mean_a, 1),
                "mean B": _fmt(r.mean_b, 1),
                esc("A − B (paired)"): esc(f"{_fmt(r.diff, 1)} [{_fmt(r.ci_low, 1)}, {_fmt(r.ci_high, 1)}]"),
                "unit": esc(f"{r.unit} ({r.n_seeds} seeds, {r.n_pairs} pairs)"),
                "p": f"{r.p:.3g}",
                "p (Holm)": f"{r.p_holm:.3g}" + ("*" if r.significant else ""),
            }
        )
    return pd.DataFrame(rows)


COMPARE_CAPTION = (
    "A vs B on the seeds (and test examples, matched by id) both have: the paired difference x100 with "
    "its 95% paired bootstrap CI, the two-sided paired permutation p, and Holm over the rows "
    f"(* = significant at {LEVEL}). unit: examples = the headline metric scored per example by the "
    "benchmark's scorer (an unreadable answer scores 0), used where these scores reproduce both cells' "
    "headlines; seeds = the headline per seed (F1, Pearson, CodeBLEU: not a mean over examples; or no "
    "predictions)."
)
