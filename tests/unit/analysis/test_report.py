"""report.html: provenance (commits, versions, dates, command, configs), a section per dataset group, run
status, everything escaped; rendered in headless Chromium (no console error, a real screenshot, tables
sortable by a click)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import mixed_tree  # tests/unit/analysis is on sys.path (pytest prepend mode)
import pandas as pd
import pytest

from multirun_analysis import report
from multirun_analysis.__main__ import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium absent (Debian: apt-get install chromium; .ci/run installs it)"
)
EVIL_NOTE = "</pre><script>alert(1)</script>"
EVIL_ERROR = "<img src=x onerror=alert(2)>"
R8 = "lora [eval.mode=generate, r=8]"


def _rewrite(folder: Path, **changes) -> None:
    path = folder / "result.json"
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """The mixed tree (lora: 3 variants, a failed run, a duplicate) with provenance, one run on
    superglue/cb from another commit with another torch, and a method named ``<x>``."""
    root = tmp_path_factory.mktemp("report")
    results = mixed_tree.build(root)
    versions = {"torch": "2.5.1", "transformers": "4.46.0", "peft": "0.13.2"}
    for day, folder in enumerate(sorted(p for p in results.iterdir() if p.is_dir()), 1):
        _rewrite(folder, versions=versions, git_commit="abc1234", started_at=f"2025-01-0{day}T10:00:00+0000")
    for copy in ("run0", "copy_of_run0"):  # one run in two folders: either may be the one kept
        (results / copy / ".hydra").mkdir()
        overrides = "- method=lora\n- method.options.r=8\n- seed=1\n"
        (results / copy / ".hydra" / "overrides.yaml").write_text(overrides)
    cb = mixed_tree.record(8, "generate", 1)
    cb["config"]["dataset"]["name"] = "superglue/cb"
    cb.update(
        run_key="cb",
        dataset="superglue/cb",
        headline_value=0.625,
        git_commit="def5678-dirty",
        versions={**versions, "torch": "2.4.0"},
        started_at="2025-01-09T12:30:00+0000",
    )
    mixed_tree.write_run(results / "cb", cb, None)
    for seed, status in ((1, "success"), (2, "failed")):
        evil = mixed_tree.record(8, "generate", seed, status=status)
        evil["config"]["method"] = {"name": "<x>", "options": {"note": EVIL_NOTE}}
        evil.update(method="<x>", run_key=f"evil{seed}", versions=versions, git_commit="abc1234")
        evil.update(started_at="2025-01-08T09:00:00+0000")
        if status == "failed":
            evil["error"] = EVIL_ERROR
        mixed_tree.write_run(results / f"evil{seed}", evil, None)
    return results


@pytest.fixture(scope="module")
def out(tree) -> Path:
    out = tree.parent / "out"
    main([str(tree), "--out", str(out)])
    return out


@pytest.fixture(scope="module")
def page(out) -> str:
    return (out / "report.html").read_text()


def section(page: str, anchor: str) -> str:
    match = re.search(f'<section id="{anchor}">(.*?)</section>', page, re.S)
    assert match, f"no section {anchor}"
    return match.group(1)


def test_provenance_commits_versions_dates_command(page, tree):
    prov = section(page, "provenance")
    # two commits: flagged, each with its count (9 runs after the duplicate is dropped)
    assert '<div class="warn">2 different git commits' in prov
    assert "<code>abc1234</code>: 8 runs" in prov and "<code>def5678-dirty</code>: 1 runs" in prov
    assert "2 different torch versions" in prov and "<code>2.4.0</code>: 1 runs" in prov
    assert "<td>transformers</td><td class='text'><code>4.46.0</code></td>" in prov  # one version: plain
    assert "2025-01-01 10:00:00+00:00 to 2025-01-09 12:30:00+00:00" in prov
    assert f"python -m multirun_analysis {tree} --out {tree.parent / 'out'}" in prov
    assert "Report made " in page


def test_provenance_variants_and_their_configs(page):
    prov = section(page, "provenance")
    table = read_tables(prov.split("<h3>Variants and their configs</h3>")[1])[0]
    assert table[["variant", "settings that differ", "datasets", "seeds", "runs"]].values.tolist() == [
        ["<x>", "(none: the only variant)", "glue/sst2", "1, 2", "2"],
        ["lora [eval.mode=generate, r=16]", "eval.mode=generate, r=16", "glue/sst2", "1, 2", "2"],
        [R8, "eval.mode=generate, r=8", "glue/sst2, superglue/cb", "1, 2, 3", "4"],
        ["lora [eval.mode=score, r=16]", "eval.mode=score, r=16", "glue/sst2", "1", "1"],
    ]
    details = re.findall(r"<details><summary>(.*?)</summary>(.*?)</details>", prov, re.S)
    assert [s for s, _ in details][1:] == [
        "tiny-random / lora [eval.mode=generate, r=16]: resolved config of glue/sst2 seed 1",
        f"tiny-random / {R8}: resolved config of glue/sst2 seed 1",
        "tiny-random / lora [eval.mode=score, r=16]: resolved config of glue/sst2 seed 1",
    ]
    r8 = details[2][1]
    assert "<code>python -m bench method=lora method.options.r=8 seed=1</code>" in r8  # .hydra/overrides
    assert "method:\n  name: lora\n  family: reparametrized\n  options:\n    r: 8\n" in r8  # YAML, in order


def test_a_section_per_dataset_group(page):
    glue, superglue = section(page, "glue"), section(page, "superglue")
    assert "glue/sst2 (accuracy)" in glue and "superglue/cb" not in glue
    cb = read_tables(superglue)[0]
    assert cb["method"].tolist() == [R8]  # only the variant that ran there
    assert cb["superglue/cb (accuracy)"].tolist() == ["62.5 n=1×8 cap inv 12.5%"]
    assert read_tables(glue)[0]["method"].tolist() == [
        "<x>",
        "lora [eval.mode=generate, r=16]",
        R8,
        "lora [eval.mode=score, r=16]",
    ]
    for part in (glue, superglue):
        assert part.count("data:image/png;base64,") == 1  # the group's own strip plot
    assert 'alt="seed_spread_glue"' in glue and 'alt="seed_spread_superglue"' in superglue
    efficiency = section(page, "efficiency")
    assert 'alt="performance_vs_params"' in efficiency and 'alt="performance_vs_memory"' in efficiency
    assert "PSCP" in efficiency and section(page, "stability-over-seeds").count("<table") == 1
    nav = re.search("<nav>(.*?)</nav>", page, re.S).group(1)
    assert re.findall(r'href="#([^"]+)"', nav)[:6] == [  # sections appended later (paper tables) follow
        "provenance",
        "glue",
        "superglue",
        "efficiency",
        "stability-over-seeds",
        "runs",
    ]


def test_run_status_and_failures(page):
    runs = section(page, "runs")
    assert "failed: 2, success: 7 (1 duplicate records counted once)" in runs
    counts = read_tables(runs)[0]
    assert counts.set_index("variant")[["failed", "success"]].to_dict("index")[R8] == {
        "failed": "1",
        "success": "3",
    }
    failures = read_tables(runs.split("Runs not scored (2)")[1])[0]
    assert failures[["label", "seed", "error"]].values.tolist() == [
        ["<x>", "2", EVIL_ERROR],
        [R8, "3", "RuntimeError: out of memory"],
    ]


class _Tables(HTMLParser):
    """Each <table> as a DataFrame of its cells' text (the first row the header)."""

    def __init__(self):
        super().__init__()
        self.tables, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def read_tables(fragment: str) -> list[pd.DataFrame]:
    parser = _Tables()
    parser.feed(fragment)
    return [pd.DataFrame(rows[1:], columns=rows[0]) for rows in parser.tables]


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_every_record_text_is_escaped(page):
    parsed = _Tags()
    parsed.feed(page)
    names = [t for t, _ in parsed.tags]
    assert names.count("script") == 1 and "x" not in names  # only the sorting script
    assert all(not k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    assert all(a["src"].startswith("data:image/png;base64,") for t, a in parsed.tags if t == "img")
    links = [a[k] for _, a in parsed.tags for k in ("src", "href") if k in a]  # self-contained: no network
    assert "link" not in names and not any(re.match(r"(https?:)?//", v) for v in links)
    text = "".join(parsed.text)
    assert f"note: {EVIL_NOTE}" in text and EVIL_ERROR in text and "<x>" in text


def test_html_report_escapes_headings_and_numbers_repeated_anchors():
    page = report.html_report("<t>", [("A & B", "<p>x</p>"), ("A & B", "<p>y</p>")])
    assert "<title>&lt;t&gt;</title>" in page and "<h2>A &amp; B</h2>" in page
    assert '<section id="a-b">' in page and '<section id="a-b-2">' in page


# ---- headless Chromium ----


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to the console, thrown errors included (Chromium logs them as CONSOLE)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@needs_chromium
def test_console_errors_are_seen(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><body><script>undefinedFunction();</script></body>")
    messages = console_messages(chromium(tmp_path, bad.as_uri(), "--dump-dom").stderr)
    assert any("Uncaught ReferenceError: undefinedFunction" in m for m in messages), messages


@needs_chromium
def test_report_renders_in_chromium(out, tmp_path):
    from PIL import Image

    url = (out / "report.html").as_uri()
    dom = chromium(tmp_path, url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    tables = dom.stdout.count("<table")
    assert tables >= 6 and dom.stdout.count('data-sortable="1"') == tables  # the script ran on each
    shot = tmp_path / "report.png"
    done = chromium(tmp_path, url, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    assert shot.stat().st_size > 20_000
    image = Image.open(shot).convert("L")
    assert image.size == (1280, 2000)
    assert len(image.getcolors(maxcolors=256 * 256)) > 16  # text, tables and plots, not a blank page


SORT_TABLE = """<table><thead><tr><th>method</th><th>params</th><th>score</th></tr></thead><tbody>
<tr><td>b</td><td>1.75M</td><td>81.2 ±8.8 [50.0, 100.0]† n=2×8</td></tr>
<tr><td>a10</td><td>–</td><td>+1 failed</td></tr>
<tr><td>a9</td><td>8K</td><td>9.5 ±1.0 n=2×8</td></tr>
<tr><td>c</td><td>0</td><td>—</td></tr>
<tr><td>d</td><td>57.6K</td><td>−3.0 n=1×8</td></tr>
</tbody></table>"""
CLICKS = """<script>
var heads = document.querySelectorAll("th"), seen = [];
function order() {
  return Array.prototype.map.call(document.querySelectorAll("tbody tr"), function (r) {
    return r.cells[0].textContent;
  }).join(",");
}
[1, 1, 2, 0].forEach(function (i) { heads[i].click(); seen.push(order()); });
document.body.setAttribute("data-sorted", seen.join("|"));
</script></body>"""


@needs_chromium
def test_tables_sort_on_a_header_click(tmp_path):
    page = report.html_report("sorting", [("T", SORT_TABLE)]).replace("</body>", CLICKS)
    (tmp_path / "sort.html").write_text(page)
    dom = chromium(tmp_path, (tmp_path / "sort.html").as_uri(), "--dump-dom")
    assert console_messages(dom.stderr) == []
    sorted_ = re.search(r'data-sorted="([^"]*)"', dom.stdout).group(1).split("|")
    assert sorted_ == [
        "c,a9,d,b,a10",  # params ascending: 0 < 8K < 57.6K < 1.75M, the dash last
        "b,d,a9,c,a10",  # again: descending, the dash still last
        "d,a9,b,c,a10",  # score: -3.0 < 9.5 < 81.2; "—" and "+1 failed" last, in their order
        "a9,a10,b,c,d",  # text, with numbers inside compared as numbers
    ]
