"""A self-contained HTML report (no network: inline CSS, a small inline script, plots as base64 PNG) that
reads like a paper's results section: provenance, a section per dataset group, efficiency, stability.

Every table whose header row is a ``<thead>`` sorts on a click on its header: numbers numerically
(``8K`` < ``1.75M``), text alphabetically, empty cells and dashes last in both directions. Every text
that comes from a record (method names, config values, errors) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from multirun_analysis.plots import DPI as PNG_DPI
from multirun_analysis.tables import BASE_METHOD, ROWS, dataset_group

esc = html.escape
PNG = b"\x89PNG\r\n\x1a\n"

CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;
line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
nav ul{columns:3;list-style:none;padding:0}nav a{text-decoration:none}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
td.text,th.text{text-align:left}
table[data-sortable] th{cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.warn{background:#fff3cd;border-left:4px solid #e0a800;padding:.4em .8em}
.caption{font-size:13px;color:#444;max-width:60em}
figure{margin:1em 0}figure img{max-width:100%;height:auto}
details{margin:.4em 0}summary{cursor:pointer}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}
code{font-size:12px}
"""

# Sorting: a click on a header sorts the body rows by that column; a second click reverses. A column is
# numeric when most of its non-empty cells start with a number (a K/M/B suffix scales it; "81.2 ±8.8 ..."
# sorts as 81.2); "–", "—", "nan", empty cells, and in a numeric column the cells without a number, sort
# last either way. Ties keep their order. The table gets data-sortable="1" once the script has run.
SCRIPT = r"""
(function () {
  var EMPTY = /^(|[\u2013\u2014-]|nan|none|n\/a)$/i;
  var NUM = /^([\u2212-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*([KMB])?(?![\w.])/i;
  var SCALE = {K: 1e3, M: 1e6, B: 1e9};
  function cellKey(cell) {
    var text = cell ? cell.textContent.trim() : "";
    if (EMPTY.test(text)) return {empty: true, text: text};
    var m = NUM.exec(text);
    var num = m ? parseFloat(m[1].replace("\u2212", "-")) * (m[2] ? SCALE[m[2].toUpperCase()] : 1) : NaN;
    return {empty: false, text: text, num: num};
  }
  function sortBy(table, col, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keys = rows.map(function (r) { return cellKey(r.cells[col]); });
    var nums = keys.filter(function (k) { return !k.empty && !isNaN(k.num); }).length;
    var texts = keys.filter(function (k) { return !k.empty && isNaN(k.num); }).length;
    var numeric = nums > texts;  // a score column with a "+1 failed" cell stays numeric; that cell sorts last
    if (numeric) keys.forEach(function (k) { if (isNaN(k.num)) k.empty = true; });
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var order = rows.map(function (r, i) { return i; });
    order.sort(function (a, b) {
      var x = keys[a], y = keys[b];
      if (x.empty || y.empty) return (x.empty - y.empty) || (a - b);
      var c = numeric ? x.num - y.num : x.text.localeCompare(y.text, undefined, {numeric: true});
      return c * dir || (a - b);
    });
    Array.prototype.forEach.call(table.tHead.rows[table.tHead.rows.length - 1].cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    order.forEach(function (i) { body.appendChild(rows[i]); });
  }
  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table"), function (table) {
      if (!table.tHead || !table.tBodies.length) return;
      var header = table.tHead.rows[table.tHead.rows.length - 1];
      Array.prototype.forEach.call(header.cells, function (th, col) {
        th.title = "click to sort";
        th.addEventListener("click", function () { sortBy(table, col, th); });
      });
      table.setAttribute("data-sortable", "1");
    });
  }
  init();  // the script closes the body: every table is parsed by now
})();
"""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def figure(path: Path, caption: str = "") -> str:
    """A PNG embedded as base64, with a caption and a note of the PDF beside it."""
    raw = path.read_bytes()
    data = base64.b64encode(raw).decode()
    pdf = path.with_suffix(".pdf")
    note = f" (vector: <code>{esc(pdf.name)}</code>)" if pdf.exists() else ""
    # shown a little above its printed size (a CSS pixel is 1/96 inch), not at 2x on a 96 dpi screen
    width = f' width="{round(int.from_bytes(raw[16:20], "big") * 120 / PNG_DPI)}"' if raw[:8] == PNG else ""
    return (
        f'<figure><img alt="{esc(path.stem)}"{width} src="data:image/png;base64,{data}">'
        f'<figcaption class="caption">{esc(caption)}{note}</figcaption></figure>'
    )


def table_html(frame: pd.DataFrame, escape: bool = True) -> str:
    """``frame`` as an HTML table (sortable in the report); ``escape=False`` for frames whose cells
    :mod:`multirun_analysis.render` already escaped and marked up."""
    return frame.to_html(index=False, escape=escape, na_rep="–", border=0)


def html_report(
    title: str,
    sections: list[tuple[str, str]],
    images: Iterable[Path] = (),
    generated: datetime | None = None,
) -> str:
    """``sections``: (heading, HTML fragment) pairs, in order (headings are escaped here, fragments are
    HTML); ``images``: PNG files embedded in a last "Plots" section."""
    generated = generated or datetime.now(UTC)
    images = list(images)
    if images:
        sections = [*sections, ("Plots", "".join(figure(p) for p in images))]
    ids: Counter[str] = Counter()
    anchors = []
    for heading, _ in sections:
        base = slug(heading)
        ids[base] += 1
        anchors.append(base if ids[base] == 1 else f"{base}-{ids[base]}")
    nav = "".join(
        f'<li><a href="#{a}">{esc(h)}</a></li>' for a, (h, _) in zip(anchors, sections, strict=True)
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="caption">Report made {esc(generated.strftime("%Y-%m-%d %H:%M %Z").strip())}. '
        "Click a table header to sort by that column.</p>",
        f"<nav><ul>{nav}</ul></nav>",
    ]
    for anchor, (heading, fragment) in zip(anchors, sections, strict=True):
        parts.append(f'<section id="{anchor}"><h2>{esc(heading)}</h2>\n{fragment}\n</section>')
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)


# ---- provenance ----


def _read_record(path: object) -> dict:
    try:
        data = json.loads((Path(str(path)) / "result.json").read_text())
    except (OSError, ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _overrides(path: object) -> list[str] | None:
    """The run's command-line overrides (``.hydra/overrides.yaml``), when the run folder has them."""
    import yaml

    try:
        data = yaml.safe_load((Path(str(path)) / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError, TypeError):
        return None
    return [str(x) for x in data] if isinstance(data, list) else None


def _counted(values: Iterable[object], what: str) -> str:
    """One value: itself. Several: each with its count, flagged."""
    counts = Counter("unknown" if v is None or v == "" else str(v) for v in values)
    if len(counts) <= 1:
        return "".join(f"<code>{esc(v)}</code>" for v in counts) or "unknown"
    items = "".join(f"<li><code>{esc(v)}</code>: {n} runs</li>" for v, n in counts.most_common())
    return f'<div class="warn">{len(counts)} different {esc(what)}: compare with care<ul>{items}</ul></div>'


def _date(text: object) -> datetime | None:
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(str(text), fmt)
        except ValueError:
            continue
    return None


def _date_range(started: list[object]) -> str:
    dates = [d for d in map(_date, started) if d is not None]
    if not dates:
        return "unknown (no record has started_at)"
    naive = [d.replace(tzinfo=None) for d in dates]  # compare wall-clock times: records rarely mix zones
    first, last = dates[naive.index(min(naive))], dates[naive.index(max(naive))]
    missing = len(started) - len(dates)
    span = f"{first.isoformat(sep=' ')} to {last.isoformat(sep=' ')}" if first != last else first.isoformat()
    return esc(span) + (f" ({missing} runs without a start time)" if missing else "")


def _yaml(config: dict) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _representative(group: pd.DataFrame) -> pd.Series:
    """The run whose config stands for its variant: a successful one first, then the lowest seed, the
    first dataset, the first folder."""
    order = group.assign(_bad=group["status"] != "success").sort_values(["_bad", "seed", "dataset", "path"])
    return order.iloc[0]


def variants_fragment(runs: pd.DataFrame) -> str:
    """Per (model, variant): the identity settings in which it differs from its siblings, its datasets,
    seeds and runs, and the full resolved config of one of its runs (YAML, collapsible)."""
    rows, details = [], []
    for (model, label), group in runs.groupby(ROWS, sort=True):
        rep = _representative(group)
        seeds = sorted({int(s) for s in group["seed"].dropna()})
        rows.append(
            {
                "model": model,
                "variant": label,
                "settings that differ": rep.get("variant") or "(none: the only variant)",
                "datasets": ", ".join(sorted(set(group["dataset"].astype(str)))),
                "seeds": ", ".join(map(str, seeds)),
                "runs": len(group),
            }
        )
        overrides = _overrides(rep["path"])
        command = (
            f"<p>Command line: <code>python -m bench {esc(' '.join(overrides))}</code></p>"
            if overrides is not None
            else ""
        )
        details.append(
            f"<details><summary>{esc(f'{model} / {label}')}: resolved config of "
            f"{esc(str(rep['dataset']))} seed {esc(str(rep['seed']))}</summary>"
            f"{command}<pre>{esc(_yaml(rep['config'] or {}))}</pre></details>"
        )
    return table_html(pd.DataFrame(rows)) + "".join(details)


def provenance_fragment(runs: pd.DataFrame, command: str | None = None) -> str:
    """Commits, package versions, dates, the command line and the configs of the variants."""
    records = [_read_record(p) for p in runs["path"]]
    commits = [r.get("git_commit") or g for r, g in zip(records, runs["git_commit"], strict=True)]
    packages: dict[str, list[object]] = {}
    for r in records:
        for name in r.get("versions") or {}:
            packages.setdefault(name, [])
    for r in records:
        for name in packages:
            packages[name].append((r.get("versions") or {}).get(name))
    version_rows = "".join(
        f"<tr><td>{esc(name)}</td><td class='text'>{_counted(values, name + ' versions')}</td></tr>"
        for name, values in packages.items()
    )
    items = [
        f"<dt>Git commit</dt><dd>{_counted(commits, 'git commits')}</dd>",
        f"<dt>Runs started</dt><dd>{_date_range([r.get('started_at') for r in records])}</dd>",
        f"<dt>Python</dt><dd>{_counted([r.get('python') for r in records], 'Python versions')}</dd>",
    ]
    if command:
        items.append(f"<dt>Report command</dt><dd><code>{esc(command)}</code></dd>")
    versions = (
        f"<table><thead><tr><th>package</th><th class='text'>version</th></tr></thead>"
        f"<tbody>{version_rows}</tbody></table>"
        if version_rows
        else "<p>Package versions: not recorded.</p>"
    )
    return (
        f"<dl>{''.join(items)}</dl><h3>Package versions</h3>{versions}"
        f"<h3>Variants and their configs</h3>{variants_fragment(runs)}"
    )


# ---- results per dataset group ----


def group_tables(perf: pd.DataFrame, cells: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The performance table split by dataset group (GLUE, SuperGLUE, ...), in column order; each keeps
    the params column and only the rows with a run (of any status) in the group."""
    groups: dict[str, list] = {}
    for col in perf.columns[1:]:
        groups.setdefault(dataset_group(col[1]), []).append(col)
    present = set(cells.index)
    out = {}
    for group, cols in groups.items():
        keep = [any((m, lab, c[1]) in present for c in cols) for m, lab in perf.index]
        out[group] = perf.loc[keep, [perf.columns[0], *cols]]
    return out


def group_section(
    group: str, table: pd.DataFrame, caption: str, images: Iterable[Path] = ()
) -> tuple[str, str]:
    """A dataset group's section: its performance table (display strings, already escaped), the
    caption, its plots."""
    plots = "".join(
        figure(p, f"{group}: every seed a point, the mean a bar (box plots only above 5 seeds).")
        for p in images
    )
    return group, table_html(table, escape=False) + f'<p class="caption">{esc(caption)}</p>' + plots


def runs_fragment(runs: pd.DataFrame, failures: pd.DataFrame) -> str:
    """Status counts per (model, variant) and the runs that count in no mean, with their errors."""
    counts = runs.groupby([*ROWS, "status"]).size().unstack("status", fill_value=0).reset_index()
    counts = counts.rename(columns={"label": "variant"}).rename_axis(columns=None)
    total = ", ".join(f"{k}: {v}" for k, v in runs["status"].value_counts().sort_index().items())
    dup = runs.attrs.get("duplicates", 0)
    parts = [f"<p>{esc(total)}" + (f" ({dup} duplicate records counted once)" if dup else "") + "</p>"]
    parts.append(table_html(counts))
    if not failures.empty:
        parts.append(f"<h3>Runs not scored ({len(failures)})</h3>" + table_html(failures))
    return "".join(parts)


def efficiency_fragment(images: Iterable[Path], table: str = "") -> str:
    """The Pareto plots (performance vs trainable parameters, vs memory) above ``table`` (HTML)."""
    caption = (
        "Mean headline over datasets (each the mean over seeds) per trained variant; dashed: the Pareto "
        f"front (no variant both cheaper and better); dotted: the base model (method {BASE_METHOD})."
    )
    return "".join(figure(p, caption) for p in images) + table


def caption(text: str) -> str:
    return f'<p class="caption">{esc(text)}</p>'
