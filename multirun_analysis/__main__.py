"""``python -m multirun_analysis RESULTS_DIR... [--out DIR] [--filter KEY=VALUE] [--group-by KEY]
[--compare A B]``: tables, plots and an HTML report.

Reads every result.json under the folders (never folder names; a run key seen twice counts once) and
writes, under --out: performance.{md,tex}, stability.{md,tex}, pscp.{md,tex,csv}, compare.{md,tex,csv}
(with --compare), cells.csv (mean, std, n, CI per variant and dataset), runs.csv (one row per run),
metrics.csv (one row per run, metric and convention), failures.csv, performance_vs_params.{png,pdf},
performance_vs_memory.{png,pdf}, seed_spread[_GROUP].{png,pdf}, report.html (provenance, a section per
dataset group, sortable tables, the plots); and prints the Markdown tables.

Rows are variants: a method with its value of every setting in which its variants differ
(``lora [eval.mode=generate, r=8]`` beside ``lora [eval.mode=score, r=16]``; one variant: ``lora``).
--filter KEY=VALUE keeps the runs whose record field (method, dataset, seed, status, git_commit) or
dotted config key (method.options.r, eval.mode) equals VALUE (VALUE may list options: r=8,16).
--group-by KEY splits rows by a key the run identity does not hold (git_commit; precision and
hardware.device are identity already), each (run key, KEY value) counted once.
--compare A B: A vs B (variant labels, or method names) per dataset, paired, with CI and p-values.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench.config.schema import PSCPConfig
from bench.metrics.pscp import PSCP_OPTIONS
from multirun_analysis import plots, render, report, tables
from multirun_analysis.records import load_runs, tidy_metrics, tidy_runs
from multirun_analysis.report import html_report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = PSCPConfig()
    parser = argparse.ArgumentParser(
        prog="python -m multirun_analysis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results", nargs="+", type=Path, help="folders holding result.json files")
    parser.add_argument("--out", type=Path, default=Path("tables"), help="output folder (default: tables)")
    parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help="select runs")
    parser.add_argument("--group-by", action="append", default=[], metavar="KEY", help="split rows by KEY")
    parser.add_argument("--compare", nargs=2, action="append", default=[], metavar=("A", "B"))
    for name in PSCP_OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=getattr(d, name))
    parser.add_argument(
        "--convention",
        choices=("peftbench", "paper"),
        help="score every table in this convention (paper: PEFT-Bench's scoring script, metrics_paper; "
        "peftbench: ours, metrics); default: the convention each run was scored in (metric.convention)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the plots (faster)")
    return parser.parse_args(argv)


def write_all(
    runs, out: Path, constants: PSCPConfig, with_plots: bool = True, compare=(), command: str | None = None
) -> dict[str, str]:
    """Write every table, plot and the report (``command``: the command line, shown in it); return the
    Markdown of each table."""
    out.mkdir(parents=True, exist_ok=True)
    answers = tables.load_all_answers(runs)
    perf = tables.performance_table(runs)
    cells = tables.cell_stats(runs, answers)
    marks = tables.best_marks(runs, cells, answers)
    metrics = render.headline_names(runs)
    std, n = tables.stability_table(runs)
    pscp = tables.pscp_table(runs, constants)
    failures = tables.failures_table(runs)
    comparisons = [tables.compare_table(runs, a, b, answers) for a, b in compare]

    def frames(fmt):
        yield (
            "performance",
            render.performance_frame(perf, cells, marks, metrics, fmt),
            (render.performance_caption(cells, marks)),
        )
        yield "stability", render.stability_frame(std, n, cells, fmt), render.STABILITY_CAPTION
        if not pscp.empty:
            yield "pscp", render.pscp_frame(pscp, fmt), render.PSCP_CAPTION
        for i, table in enumerate(comparisons):
            if not table.empty:
                yield f"compare{i or ''}", render.compare_frame(table, fmt), render.COMPARE_CAPTION

    md = {}
    for name, frame, caption in frames("markdown"):
        md[name] = render.markdown(frame) + "\n\n" + caption
        (out / f"{name}.md").write_text(md[name] + "\n")
    for name, frame, caption in frames("latex"):
        (out / f"{name}.tex").write_text(render.latex(frame, caption, f"tab:{name}"))
    cells.reset_index().to_csv(out / "cells.csv", index=False)
    pscp.reset_index().to_csv(out / "pscp.csv", index=False)
    for i, table in enumerate(comparisons):
        table.to_csv(out / f"compare{i or ''}.csv", index=False)
    tidy_runs(runs).to_csv(out / "runs.csv", index=False)
    tidy_metrics(runs).to_csv(out / "metrics.csv", index=False)
    failures.to_csv(out / "failures.csv", index=False)

    by_group, costs, images = {}, [], []  # every plot is embedded in its own section
    if with_plots and not tables.successful(runs).empty:
        by_group = plots.group_plots(runs, out)  # seed_spread.{png,pdf}, and one per dataset group
        costs = plots.performance_vs_params(runs, out) + plots.performance_vs_memory(runs, out)
    html = {name: report.table_html(f, escape=False) + report.caption(c) for name, f, c in frames("html")}
    sections = [("Provenance", report.provenance_fragment(runs, command))]
    for group, table in report.group_tables(perf, cells).items():
        frame = render.performance_frame(table, cells, marks, metrics, "html")
        pngs = [p for p in by_group.get(group, []) if p.suffix == ".png"]
        sections.append(report.group_section(group, frame, render.performance_caption(cells, marks), pngs))
    pngs = [p for p in costs if p.suffix == ".png"]
    sections.append(("Efficiency", report.efficiency_fragment(pngs, html.get("pscp", ""))))
    sections.append(("Stability over seeds", html["stability"]))
    sections += [(f"Comparison {n[len('compare') :]}".strip(), h) for n, h in html.items() if "compare" in n]
    sections.append(("Runs", report.runs_fragment(runs, failures)))
    from multirun_analysis.search_tables import write_search_tables  # default vs tuned (search.json)

    for name, text, fragment in write_search_tables(runs, runs.attrs.get("roots", ()), out):
        md[name] = text
        sections.append((name, fragment))
    from multirun_analysis.paper_tables import write_paper_tables  # PEFT-Bench's tables and deltas

    for name, text, fragment in write_paper_tables(runs, out / "paper", constants=constants):
        md[name] = text
        sections.append((name, fragment))
    (out / "report.html").write_text(html_report("peftbench results", sections, images))
    return md


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        runs = load_runs(args.results, filters=args.filter, group_by=args.group_by)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if runs.empty:
        raise SystemExit(f"no result.json under {', '.join(map(str, args.results))} (after --filter)")
    if args.convention:
        from multirun_analysis.paper_tables import in_convention

        runs = in_convention(runs, args.convention)
    constants = PSCPConfig(**{k: getattr(args, k) for k in PSCP_OPTIONS})
    try:
        command = shlex.join(["python", "-m", "multirun_analysis", *(sys.argv[1:] if argv is None else argv)])
        md = write_all(
            runs, args.out, constants, with_plots=not args.no_plots, compare=args.compare, command=command
        )
    except ValueError as err:  # --compare naming no variant
        raise SystemExit(str(err)) from None
    counts = tables.status_counts(runs)
    dup = runs.attrs.get("duplicates", 0)
    print(
        "runs: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + (f" ({dup} duplicates counted once)" if dup else "")
    )
    for name, text in md.items():
        print(f"\n## {name}\n\n{text}")
    for r in tables.failures_table(runs).itertuples():
        print(f"{r.status}: {r.model} {r.label} {r.dataset} seed {r.seed}: {r.error} ({r.path})")
    print(f"\nwrote tables, plots and report.html to {args.out}")


if __name__ == "__main__":
    main()
