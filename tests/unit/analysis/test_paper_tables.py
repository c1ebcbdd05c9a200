"""PEFT-Bench's tables from hand-made result records: every cell worked out by hand; the shipped
published numbers checked literally against ../shared/PAPERS.md; every .tex compiles (pdflatex)."""

from __future__ import annotations

import json
import math
import shutil
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import yaml

from multirun_analysis import paper_tables as pt
from multirun_analysis.records import load_runs

REPO = Path(__file__).resolve().parents[3]
PAPERS_MD = REPO.parent / "shared" / "PAPERS.md"
MODEL = "llama-3-8b-instruct"
R16, R8 = "lora [r=16]", "lora [r=8]"
GB = 1e9

# (method, r, dataset, seed) -> (paper score, peftbench score, device memory GB); paper scores chosen by hand
RUNS = {
    ("none", None, "glue/sst2", 1): (0.92, 0.82, None),
    ("none", None, "glue/sst2", 2): (0.92, 0.82, None),
    ("none", None, "superglue/cb", 1): (0.47, 0.37, None),
    ("none", None, "superglue/cb", 2): (0.47, 0.37, None),
    ("none", None, "math/gsm8k", 1): (0.79, 0.69, None),
    ("none", None, "math/gsm8k", 2): (0.79, 0.69, None),
    ("lora", 16, "glue/sst2", 1): (0.90, 0.80, 10),
    ("lora", 16, "glue/sst2", 2): (0.96, 0.86, 10),
    ("lora", 16, "superglue/cb", 1): (0.80, 0.70, 10),
    ("lora", 16, "superglue/cb", 2): (0.70, 0.60, 10),
    ("lora", 16, "math/gsm8k", 1): (0.60, 0.50, 10),
    ("lora", 16, "math/gsm8k", 2): (0.70, 0.60, 40),  # memory: mean 15 GB, median 10 GB
    ("lora", 8, "glue/sst2", 1): (0.50, 0.40, 10),  # a second LoRA variant: its own row
    ("ia3", None, "glue/sst2", 1): (0.95, 0.85, 20),
    ("ia3", None, "glue/sst2", 2): (0.95, 0.85, 20),
    ("ia3", None, "superglue/cb", 1): (0.50, 0.40, 20),
    ("ia3", None, "superglue/cb", 2): (0.60, 0.50, 20),
    ("ia3", None, "math/gsm8k", 1): (0.40, 0.30, 20),
    ("ia3", None, "math/gsm8k", 2): (0.44, 0.34, 20),
}
PARAMS = {"none": 0, "lora": 14_680_064, "ia3": 196_608}
FLOPS = {"none": 0, "lora": 0, "ia3": 0.31e12}
PAPER_METRIC = {"glue/sst2": "f1", "superglue/cb": "f1_macro", "math/gsm8k": "accuracy"}


def record(method, r, dataset, seed, paper, ours, memory_gb, model=MODEL, style="paper") -> dict:
    options = {"r": r, "lora_alpha": 16} if r else {}
    peak = None if memory_gb is None else memory_gb * GB
    return {
        "status": "success",
        "error": None,
        "run_key": f"{model}-{method}-{r}-{dataset}-{seed}-{style}",
        "model": model,
        "method": method,
        "method_family": "x",
        "dataset": dataset,
        "seed": seed,
        "config": {
            "seed": seed,
            "model": {"name": model},
            "method": {"name": method, "options": options},
            "dataset": {"name": dataset, "headline_metric": "f1_macro", "prompt_style": style},
        },
        "trainable_params": PARAMS[method],
        "flops_delta": FLOPS[method],
        "peak_memory_bytes": 0 if peak is None else peak / 2,  # the allocator's peak: below device memory
        "peak_memory_device_bytes": peak,
        "n_test": 10,
        "metrics": {"f1_macro": ours, "invalid_rate": 0.0},
        "metrics_paper": {PAPER_METRIC[dataset]: paper, "invalid_rate": 0.0},
        "paper_headline_metric": PAPER_METRIC[dataset],
        "convention": "peftbench",  # recorded in ours: the paper's numbers come from metrics_paper
        "headline_metric": "f1_macro",
        "headline_value": ours,
    }


def write_tree(root: Path, records: list[dict]) -> Path:
    for i, rec in enumerate(records):
        folder = root / f"run{i:02d}"  # folder names mean nothing
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(rec))
    return root


def md_rows(markdown: str) -> list[list[str]]:
    """The cells of a Markdown table's header and rows (the caption below it ignored)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for i, line in enumerate(lines) if i != 1]


def all_records(**kw) -> list[dict]:
    return [record(*key, *values, **kw) for key, values in RUNS.items()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return load_runs([write_tree(tmp_path_factory.mktemp("paper"), all_records())])


def test_table1_cells_average_params_and_variants(runs):
    t = pt.table1(runs, "paper")
    assert list(t.columns) == ["params", "glue/sst2", "superglue/cb", "Avg."]  # paper order: SST-2 .. CB
    assert list(t.index) == [(MODEL, "none"), (MODEL, "ia3"), (MODEL, R16), (MODEL, R8)]  # Base first
    assert t.loc[(MODEL, R16)].round(6).tolist() == [14_680_064, 93.0, 75.0, 84.0]
    assert t.loc[(MODEL, "ia3")].round(6).tolist() == [196_608, 95.0, 55.0, 75.0]
    assert t.loc[(MODEL, "none")].round(6).tolist() == [0, 92.0, 47.0, 69.5]
    r8 = t.loc[(MODEL, R8)]
    assert r8["glue/sst2"] == 50.0 and math.isnan(r8["superglue/cb"]) and math.isnan(r8["Avg."])
    assert t.attrs["seeds"] == (1, 2) and t.attrs["datasets"] == ["glue/sst2", "superglue/cb"]
    text = pt.caption("table1", t)
    assert "mean over the 2 datasets shown (of the paper's 15" in text and "1-2 seeds per cell" in text
    assert "scored by the paper's scoring script (metrics_paper): f1 on SST-2; f1_macro on CB" in text


def test_table2_and_convention_switch(runs):
    paper = pt.table2(runs, "paper")
    assert list(paper.columns) == ["math/gsm8k", "Avg."]
    assert paper.loc[(MODEL, R16)].round(6).tolist() == [65.0, 65.0]
    assert R8 not in paper.index.get_level_values("method")  # no run of r=8 on Table 2's datasets
    ours = pt.table2(runs, "peftbench")  # metrics[dataset.headline_metric]: 0.1 below each paper score
    assert ours.loc[(MODEL, R16), "math/gsm8k"] == pytest.approx(55.0)
    assert pt.table1(runs, "peftbench").loc[(MODEL, "ia3"), "glue/sst2"] == pytest.approx(85.0)
    assert pt.resolve_convention(runs) == "peftbench"  # the runs' own metric.convention
    paper_recorded = runs.assign(convention="paper", headline_value=0.0)  # recorded value wins
    assert pt.table2(paper_recorded, "paper").loc[(MODEL, "ia3"), "math/gsm8k"] == 0.0


def test_stability_std_over_seeds(runs):
    t = pt.stability(runs, "paper")
    assert list(t.columns) == ["superglue/cb", "glue/sst2", "Avg."]  # the study's order: CB .. SST-2
    # lora r=16: SST-2 0.90, 0.96 -> std (ddof=1) 0.06/sqrt(2); CB 0.80, 0.70 -> 0.1/sqrt(2)
    assert t.loc[(MODEL, R16), "glue/sst2"] == pytest.approx(6 / math.sqrt(2))
    assert t.loc[(MODEL, R16), "superglue/cb"] == pytest.approx(10 / math.sqrt(2))
    assert t.loc[(MODEL, R16), "Avg."] == pytest.approx(8 / math.sqrt(2))
    assert t.loc[(MODEL, "ia3"), "glue/sst2"] == 0.0
    assert math.isnan(t.loc[(MODEL, R8), "glue/sst2"])  # one seed: no std, never 0


def test_table3_memory_is_the_mean_over_runs(runs):
    t = pt.table3(runs, "paper")
    assert list(t.index) == [(MODEL, "ia3"), (MODEL, R16), (MODEL, R8)]  # Base has no row
    lora = t.loc[(MODEL, R16)]
    assert lora["memory_gb"] == pytest.approx(15.0)  # device memory 10,10,10,10,10,40: median is 10
    assert lora["performance"] == pytest.approx((93 + 75 + 65) / 3)
    f_params, f_mem = 1 / (1 + 14_680_064 / 5e8), 1 / (1 + 15 / 94)
    assert (lora["f_params"], lora["f_flops"], lora["f_mem"]) == pytest.approx((f_params, 1.0, f_mem))
    assert lora["pscp"] == pytest.approx((93 + 75 + 65) / 3 * f_params * f_mem)
    ia3 = t.loc[(MODEL, "ia3")]
    assert (ia3["tflops"], ia3["memory_gb"]) == pytest.approx((0.31, 20.0))
    assert ia3["f_flops"] == pytest.approx(1 / (1 + 0.31 / 10))
    assert math.isnan(t.loc[(MODEL, R8), "pscp"])  # r=8 misses 2 of the 3 datasets
    assert t.attrs["memory"].startswith("device memory")
    # one run without device memory: the allocator's peak for every run (halves here), never mixed
    some = runs.copy()
    some.loc[some["method"] == "ia3", "peak_memory_device_bytes"] = [None] + [20 * GB] * 5
    t2 = pt.table3(some, "paper")
    assert t2.loc[(MODEL, R16), "memory_gb"] == pytest.approx(7.5) and "allocator" in t2.attrs["memory"]


def test_deltas_against_published(runs):
    refs = pt.load_reference()
    d = pt.deltas(pt.table1(runs, "paper"), refs["peft_bench_table1"]).set_index(["method", "column"])
    # LoRA, published (Table 1): SST-2 95.9, CB 83.9, params 14,680,064
    assert d.loc[(R16, "glue/sst2"), ["ours", "published", "delta"]].tolist() == pytest.approx(
        [93, 95.9, -2.9]
    )
    assert d.loc[(R16, "superglue/cb"), "delta"] == pytest.approx(75 - 83.9)
    assert d.loc[(R16, "Avg."), "published"] == pytest.approx((95.9 + 83.9) / 2)
    assert d.loc[(R16, "params"), "delta"] == 0
    assert d.loc[("none", "superglue/cb"), "delta"] == pytest.approx(47 - 47.0)
    assert d.loc[(R8, "glue/sst2"), "delta"] == pytest.approx(50 - 95.9)  # each variant its own row
    d3 = pt.deltas(pt.table3(runs, "paper"), refs["peft_bench_table3"]).set_index(["method", "column"])
    assert d3.loc[(R16, "memory_gb"), "delta"] == pytest.approx(15 - 27.75)
    # another model: nothing to compare
    other = pt.deltas(pt.table1(runs.assign(model="tiny-random"), "paper"), refs["peft_bench_table1"])
    assert other.empty


def test_deltas_only_for_paper_preset_rows(runs):
    ref = pt.load_reference()["peft_bench_table1"]
    assert set(pt.comparable_rows(runs, ref, "paper")) == {
        (MODEL, "none"),
        (MODEL, "ia3"),
        (MODEL, R16),
        (MODEL, R8),
    }
    assert pt.comparable_rows(runs, ref, "peftbench") == []
    ours = runs.assign(
        config=[{**c, "dataset": {**c["dataset"], "prompt_style": "peftbench"}} for c in runs["config"]]
    )
    assert pt.comparable_rows(ours, ref, "paper") == []


def test_write_paper_tables(runs, tmp_path):
    shown = pt.write_paper_tables(runs, tmp_path, convention="paper")
    names = [name for name, _, _ in shown]
    assert names == [
        "paper_table1",
        "paper_table2",
        "paper_table3",
        "paper_stability",
        "paper_deltas_peft_bench_table1",
        "paper_deltas_peft_bench_table2",
        "paper_deltas_peft_bench_table3",
    ]  # no Llama-3.2-1B run: no PEFT-Factory deltas
    md = dict((n, m) for n, m, _ in shown)
    table1 = md_rows(md["paper_table1"])
    assert table1[0] == ["model", "method", "params", "SST-2", "CB", "Avg."]  # the paper's labels
    assert [MODEL, R16, "14,680,064", "93.0", "75.0", "84.0"] in table1
    deltas1 = md_rows(md["paper_deltas_peft_bench_table1"])
    assert deltas1[0] == ["model", "method", "params", "SST-2", "CB", "Avg."]
    # two seeds against the paper's 5: every cell says n=2 (params is not per seed)
    assert [MODEL, R16, "+0 (14,680,064)", "-2.9 (95.9) n=2", "-8.9 (83.9) n=2", "-5.9 (89.9) n=2"] in deltas1
    assert [
        MODEL,
        "none",
        "",
        "-0.2 (92.2) n=2",
        "+0.0 (47.0) n=2",
        "-0.1 (69.6) n=2",
    ] in deltas1  # no params
    assert "arXiv 2511.21285, Table 1" in md["paper_deltas_peft_bench_table1"]
    csv = pd.read_csv(tmp_path / "paper_table3.csv")
    assert csv.loc[csv["method"] == R16, "memory_gb"].item() == pytest.approx(15.0)
    delta = pd.read_csv(tmp_path / "paper_deltas_peft_bench_table2.csv")
    assert delta[["method", "column", "published"]].values.tolist()[:2] == [
        ["none", "math/gsm8k", 79.2],
        ["none", "Avg.", 79.2],
    ]
    html = dict((n, h) for n, _, h in shown)["paper_table1"]
    assert html.startswith("<table") and "14,680,064" in html
    assert not pt.write_paper_tables(runs, tmp_path / "peftbench", convention="peftbench")[4:]  # no deltas


def test_peft_factory_deltas(tmp_path):
    model = "llama-3.2-1b-instruct"
    recs = [
        record("ia3", None, "glue/sst2", seed, score, 0.0, 5, model=model)
        for seed, score in ((1, 0.95), (2, 0.96))
    ]
    shown = pt.write_paper_tables(load_runs([write_tree(tmp_path / "r", recs)]), tmp_path / "t", "paper")
    md = dict((n, m) for n, m, _ in shown)["paper_deltas_peft_factory_table2"]
    # 95.5 vs IA3's 95.3; PEFT-Factory does not state its seeds: n always shown
    assert md_rows(md)[1:] == [[model, "ia3", "+0.2 (95.3) n=2", "+0.2 (95.3) n=2"]]
    assert "n=k: our seeds (the paper does not state its own)" in md


def _compile(paths: list[Path], tmp_path: Path) -> None:
    import mixed_tree  # tests/unit/analysis is on sys.path (pytest prepend mode)

    mixed_tree.compile_tex(paths, tmp_path, wide=True)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex absent (Debian texlive-latex-base)")
def test_every_paper_tex_compiles(runs, marked, tmp_path):
    for name, tables in (("plain", runs), ("marked", marked)):  # marked: cap, inv 20.0%, +1 failed
        pt.write_paper_tables(tables, tmp_path / name, convention="paper")
        paths = sorted((tmp_path / name).glob("*.tex"))
        assert len(paths) == 7
        _compile(paths, tmp_path)
    tex = (tmp_path / "marked" / "paper_table1.tex").read_text()
    assert "95.0 inv 20.0\\% & 55.0 cap" in tex and "50.0 +1 failed" in tex


# ---- what a number does not say: invalid answers, caps, runs not scored ----


def _failed(rec: dict, status: str = "failed") -> dict:
    return {
        **rec,
        "status": status,
        "error": "RuntimeError: boom",
        "metrics": {},
        "metrics_paper": {},
        "headline_value": None,
    }


def _capped(rec: dict, cap: int) -> dict:
    return {
        **rec,
        "config": {**rec["config"], "dataset": {**rec["config"]["dataset"], "max_eval_samples": cap}},
    }


def marked_records() -> list[dict]:
    """RUNS with: ia3 on SST-2 with invalid answers (paper 0.4 and 0.0, ours 0.5 and 0.5), ia3 on CB capped
    at its 10 test rows, ia3 on GSM8K with a cap above its 10 rows (not cut), a failed seed 2 of
    lora r=8 on SST-2 and a diverged seed 3 of lora r=16 on CB."""
    recs = []
    for (method, r, dataset, seed), values in RUNS.items():
        rec = record(method, r, dataset, seed, *values)
        if (method, dataset) == ("ia3", "glue/sst2"):
            rec["metrics_paper"]["invalid_rate"] = 0.4 if seed == 1 else 0.0
            rec["metrics"]["invalid_rate"] = 0.5
        if (method, dataset) == ("ia3", "superglue/cb"):
            rec = _capped(rec, 10)
        if (method, dataset) == ("ia3", "math/gsm8k"):
            rec = _capped(rec, 20)
        recs.append(rec)
    recs.append(_failed(record("lora", 8, "glue/sst2", 2, 0.0, 0.0, 10)))
    recs.append(_failed(record("lora", 16, "superglue/cb", 3, 0.0, 0.0, 10), "diverged"))
    return recs


@pytest.fixture(scope="module")
def marked(tmp_path_factory):
    return load_runs([write_tree(tmp_path_factory.mktemp("marked"), marked_records())])


def test_cells_show_invalid_rate_cap_and_runs_not_scored(marked, tmp_path):
    shown = {n: (md, fragment) for n, md, fragment in pt.write_paper_tables(marked, tmp_path, "paper")}
    table1 = md_rows(shown["paper_table1"][0])
    assert table1[1:] == [
        [MODEL, "none", "0", "92.0", "47.0", "69.5"],
        # invalid: paper rates 0.4, 0.0 on SST-2 -> 20.0%; CB capped (10 rows of a cap of 10); Avg.: the
        # row's 4 runs -> 0.4 / 4 = 10.0%, capped as one of its cells is
        [MODEL, "ia3", "196,608", "95.0 inv 20.0%", "55.0 cap", "75.0 cap inv 10.0%"],
        [MODEL, R16, "14,680,064", "93.0", "75.0 +1 diverged", "84.0 +1 diverged"],  # the mean of 2 seeds
        [MODEL, R8, "14,680,064", "50.0 +1 failed", "–", "– +1 failed"],  # no CB run: a plain dash
    ]
    # GSM8K's cap (20) is above its 10 test rows: it cut nothing, no mark
    assert md_rows(shown["paper_table2"][0])[2] == [MODEL, "ia3", "42.0", "42.0"]
    stability = md_rows(shown["paper_stability"][0])
    assert stability[2] == [MODEL, "ia3", "7.1 cap", "0.0 inv 20.0%", "3.5 cap inv 10.0%"]
    assert stability[4] == [MODEL, R8, "–", "– +1 failed", "– +1 failed"]  # one scored seed: no std
    # Table 3: performance pools the row's datasets: ia3 invalid 0.4 over 6 runs = 6.7%, capped on CB
    table3 = md_rows(shown["paper_table3"][0])
    assert table3[1][:3] == [MODEL, "ia3", "64.0 cap inv 6.7%"]
    assert table3[2][2] == f"{(93 + 75 + 65) / 3:.1f} +1 diverged" and table3[3][2] == "– +1 failed"
    for name, (md, fragment) in shown.items():  # the legend under every table, Markdown and HTML
        assert "cap: dataset.max_eval_samples cut the test split" in md, name
        assert "inv: the mean invalid-answer rate" in md and "+k failed, diverged" in md, name
        assert "inv: the mean invalid-answer rate" in fragment, name
    assert "<td>95.0 inv 20.0%</td>" in shown["paper_table1"][1]
    csv = pd.read_csv(tmp_path / "paper_deltas_peft_bench_table1.csv").set_index(["method", "column"])
    assert csv.loc[("ia3", "glue/sst2"), ["n_seeds", "invalid_rate", "not_scored"]].tolist() == [2, 20.0, 0]
    assert csv.loc[(R8, "glue/sst2"), "not_scored_status"] == "failed"


def test_invalid_rate_in_the_convention_shown(marked):
    """ours (metrics.invalid_rate 0.5 on both seeds) where the table is in peftbench's convention."""
    frame = pt.display_frame(pt.table1(marked, "peftbench"))
    assert frame.loc[frame["method"] == "ia3", "SST-2"].item() == "85.0 inv 50.0%"


def test_a_run_without_a_score_in_the_convention_is_counted(marked):
    """A successful run without metrics_paper (a record older than it): in the paper's tables it counts
    in no mean, shown as not scored."""
    old = marked.copy()
    old.loc[
        (old["method"] == "ia3") & (old["dataset"] == "glue/sst2") & (old["seed"] == 2), "metrics_paper"
    ] = [{}]
    frame = pt.display_frame(pt.table1(old, "paper"))
    assert frame.loc[frame["method"] == "ia3", "SST-2"].item() == "95.0 inv 40.0% +1 not scored"


def test_deltas_mark_cells_not_comparable(marked, tmp_path):
    """Fewer seeds than the paper's 5, a cap, invalid answers and failed runs beside each delta."""
    shown = {n: md for n, md, _ in pt.write_paper_tables(marked, tmp_path, "paper")}
    deltas1 = md_rows(shown["paper_deltas_peft_bench_table1"])
    # ia3 published: SST-2 96.4, CB 68.9, Avg. (96.4 + 68.9) / 2 = 82.65
    assert [MODEL, "ia3", "+0 (196,608)", "-1.4 (96.4) n=2 inv 20.0%", "-13.9 (68.9) n=2 cap",
            "-7.7 (82.7) n=2 cap inv 10.0%"] in deltas1  # fmt: skip
    assert [MODEL, R8, "+0 (14,680,064)", "-45.9 (95.9) n=1 +1 failed", "– (83.9)",
            "– (89.9) n=1 +1 failed"] in deltas1  # fmt: skip
    deltas3 = md_rows(shown["paper_deltas_peft_bench_table3"])
    assert deltas3[1][:3] == [MODEL, "ia3", "-10.7 (74.7) n=2 cap inv 6.7%"]  # 64.0 vs 74.7
    md = shown["paper_deltas_peft_bench_table1"]
    assert "n=k: our seeds where fewer than the paper's 5" in md and "not comparable as it stands" in md
    # five seeds on an uncapped cell: no mark
    five = [record("ia3", None, "glue/sst2", seed, 0.95, 0.85, 20) for seed in range(1, 6)]
    delta = pt.deltas(pt.table1(load_runs([write_tree(tmp_path / "five", five)]), "paper"),
                      pt.load_reference()["peft_bench_table1"])  # fmt: skip
    assert md_rows(pt.render.markdown(pt.deltas_frame(delta, seeds=5)))[1][3] == "-1.4 (96.4)"


# ---- the shipped reference data ----


def _markdown_tables(text: str) -> list[list[list[str]]]:
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            tables.append([current[0], *current[2:]])  # the |---| rule dropped
            current = []
    return tables


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


def _shipped() -> dict:
    return yaml.safe_load(resources.files("multirun_analysis").joinpath(pt.REFERENCE_FILE).read_text())


@pytest.mark.skipif(
    not PAPERS_MD.exists(), reason=f"{PAPERS_MD} absent (the papers' spec is outside the repo)"
)
def test_reference_equals_papers_md_literally():
    """Every published number, row and column label in reference/papers.yaml is the one in PAPERS.md."""
    md = {tuple(t[0]): t[1:] for t in _markdown_tables(PAPERS_MD.read_text()) if t[0][0] == "method"}
    shipped = _shipped()["tables"]
    checked = 0
    for name, table in shipped.items():
        header = ["method", *table.get("paper_headers", table["columns"])]
        assert tuple(header) in md, f"{name}: header {header} not in PAPERS.md"
        rows = md[tuple(header)]
        assert [r[0] for r in rows] == list(table["rows"]), name
        for row in rows:
            assert [_number(c) for c in row[1:]] == table["rows"][row[0]], (name, row[0])
            checked += len(row) - 1
    params = md[("method", "settings (paper)", "trainable params (Table 1)")]
    assert {r[0]: _number(r[2]) for r in params} == shipped["peft_bench_table1"]["trainable_params"]
    assert checked == 7 * 15 + 7 * 12 + 6 * 7 + 3 * 4


def test_reference_maps_to_our_names():
    """Datasets and methods name configs that exist; a few numbers through the loader."""
    data = _shipped()
    for ours in data["datasets"].values():
        assert (REPO / "conf" / "dataset" / f"{ours}.yaml").exists(), ours
    for ours in data["methods"].values():
        assert (REPO / "conf" / "method" / f"{ours}.yaml").exists(), ours
    for ref in pt.load_reference().values():
        assert (REPO / "conf" / "model" / f"{ref.model}.yaml").exists(), ref.model
        assert {"paper", "arxiv", "table", "what", "model"} <= set(ref.source), ref.name
    refs = pt.load_reference()
    assert refs["peft_bench_table1"].values.loc["lora", "superglue/cb"] == 83.9
    assert refs["peft_bench_table1"].values.loc["p_tuning", "glue/rte"] == 0
    assert refs["peft_bench_table2"].values.loc["none", "code/apps"] == 21.6
    assert refs["peft_bench_table3"].values.loc["ln_tuning", "pscp"] == 60.19
    assert refs["peft_factory_table2"].values.loc["bitfit", "math/svamp"] == 92.3
    assert refs["peft_bench_table1"].trainable_params["ia3"] == 196_608
    assert pt.paper_datasets()[:2] == ["glue/mnli", "glue/qqp"] and len(pt.paper_datasets()) == 27


def test_cli_writes_paper_tables_and_report_sections(tmp_path, capsys):
    """Runs recorded in the paper convention (as experiment=peft_bench records them): the tables in it, and
    the deltas, under --out's paper/, printed and in report.html."""
    from multirun_analysis.__main__ import main

    recs = [
        {**r, "convention": "paper", "headline_value": r["metrics_paper"][r["paper_headline_metric"]]}
        for r in all_records()
    ]
    out = tmp_path / "t"
    main([str(write_tree(tmp_path / "r", recs)), "--out", str(out), "--no-plots"])
    names = [f"paper_{n}" for n in ("table1", "table2", "table3", "stability")]
    names += [f"paper_deltas_peft_bench_table{i}" for i in (1, 2, 3)]
    assert sorted(p.stem for p in (out / "paper").glob("*.md")) == sorted(names)
    printed = capsys.readouterr().out
    assert "## paper_deltas_peft_bench_table1" in printed and "-2.9 (95.9)" in printed
    report = (out / "report.html").read_text()
    assert "-2.9 (95.9)" in report and "14,680,064" in report


def test_cli_convention_scores_every_table_in_it(tmp_path):
    """Runs recorded in ours (peftbench): --convention paper puts metrics_paper in every table (the
    performance cells, cells.csv, the paper tables and their deltas); without it, the recorded one."""
    import pandas as pd

    from multirun_analysis.__main__ import main

    root = write_tree(tmp_path / "r", all_records())
    cells = {}
    for convention in ("paper", None):
        out = tmp_path / str(convention)
        main(
            [
                str(root),
                "--out",
                str(out),
                "--no-plots",
                *(["--convention", convention] if convention else []),
            ]
        )
        table = pd.read_csv(out / "cells.csv")
        cells[convention] = table.set_index(["method", "dataset"])["mean"]  # method: the variant label
    # ia3 on SST-2: paper f1 0.95 on both seeds, ours f1_macro 0.85; CB: paper 0.5/0.6, ours 0.4/0.5
    assert cells["paper"][("ia3", "glue/sst2")] == pytest.approx(95.0)
    assert cells[None][("ia3", "glue/sst2")] == pytest.approx(85.0)
    assert cells["paper"][("ia3", "superglue/cb")] == pytest.approx(55.0)
    assert cells[None][("ia3", "superglue/cb")] == pytest.approx(45.0)
    assert "-1.4 (96.4)" in (tmp_path / "paper" / "paper" / "paper_deltas_peft_bench_table1.md").read_text()
