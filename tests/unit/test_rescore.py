"""bench.rescore: both conventions from a predictions file, worked out by hand; a run re-scored in place."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import PROJECT_DIR
from bench.rescore import RESCORED_KEYS as RESCORED
from bench.rescore import main


def rescore(tmp_path, capsys, dataset, answers, references):
    path = tmp_path / "predictions.jsonl"
    key = "references" if isinstance(references[0], list) else "reference"
    path.write_text(
        "".join(json.dumps({"generated": a, key: r}) + "\n" for a, r in zip(answers, references, strict=True))
    )
    assert main(["--predictions", str(path), "--dataset", dataset]) == 0
    return json.loads(capsys.readouterr().out)


def test_sst2_binary_f1_of_positive_vs_macro_f1(tmp_path, capsys):
    # 3 positive (2 right, 1 invalid), 5 negative (4 right, 1 answered positive)
    # peftbench: invalid read as wrong: pos tp=2 fp=1 fn=1 -> 2/3, neg tp=4 fp=1 fn=1 -> 0.8; macro 0.733
    # paper: the invalid flipped to negative; F1 of positive alone = 2/3
    refs = ["positive"] * 3 + ["negative"] * 5
    answers = [
        "Positive.",
        "positive",
        "I cannot tell",
        "positive",
        "negative",
        "negative",
        "negative",
        "negative",
    ]
    got = rescore(tmp_path, capsys, "glue/sst2", answers, refs)
    assert got["metrics"] == pytest.approx(
        {"accuracy": 0.75, "f1_macro": (2 / 3 + 0.8) / 2, "invalid_rate": 0.125}
    )
    # the paper reads "Positive." as invalid too (exact equality): pos tp=1 fn=2 fp=1 -> 2/5
    assert got["metrics_paper"] == pytest.approx({"f1": 0.4, "exact_match": 0.625, "invalid_rate": 0.25})


def test_sst2_issue_numbers(tmp_path, capsys):
    refs = ["positive"] * 3 + ["negative"] * 5
    answers = [
        "positive",
        "positive",
        "I cannot tell",
        "positive",
        "negative",
        "negative",
        "negative",
        "negative",
    ]
    got = rescore(tmp_path, capsys, "glue/sst2", answers, refs)
    assert round(got["metrics_paper"]["f1"], 3) == 0.667  # the issue's 0.667
    assert round(got["metrics"]["f1_macro"], 3) == 0.733  # the issue's 0.778 was the invalid-as-a-class bug


def test_cb_one_invalid(tmp_path, capsys):
    # refs e e c c n, answers e e ? c n
    # paper: the invalid (ref contradiction = 2nd label) becomes entailment: e 4/5, c 2/3, n 1 -> 0.822
    # peftbench: the invalid is a false positive of e and n: e 4/5, c 2/3, n 2/3 -> 0.711
    refs = ["entailment", "entailment", "contradiction", "contradiction", "neutral"]
    answers = ["entailment", "Entailment", "maybe", "contradiction", "neutral"]
    got = rescore(tmp_path, capsys, "superglue/cb", answers, refs)
    assert got["metrics_paper"]["f1_macro"] == pytest.approx((0.8 + 2 / 3 + 1) / 3)
    assert round(got["metrics_paper"]["f1_macro"], 3) == 0.822
    assert got["metrics"]["f1_macro"] == pytest.approx((0.8 + 2 / 3 + 2 / 3) / 3)
    assert got["metrics"]["accuracy"] == pytest.approx(0.8) and got["metrics_paper"]["exact_match"] == 0.8


def test_winogrande_always_option_one(tmp_path, capsys):
    got = rescore(tmp_path, capsys, "others/winogrande", ["A"] * 4, ["A", "B", "A", "B"])
    assert got["metrics"]["accuracy"] == 0.5  # peftbench's headline
    assert got["metrics_paper"]["f1"] == 0.0  # F1 of option 2, never predicted


def test_stsb_one_five(tmp_path, capsys):
    got = rescore(tmp_path, capsys, "glue/stsb", ["1", "2", "3", "4", "five"], ["1", "2", "3", "4", "5"])
    assert got["metrics"]["pearson"] == pytest.approx(1.0) and got["metrics"]["invalid_rate"] == 0.0
    # the paper's -1.0 for "five": x = 1,2,3,4,-1 against 1..5
    assert round(got["metrics_paper"]["pearson"], 3) == -0.164 and got["metrics_paper"]["invalid_rate"] == 0.2


def test_gsm8k_needs_hashes_in_the_paper(tmp_path, capsys):
    refs = ["48 + 24 = 72\n#### 72", "#### 10", "#### 1000"]
    answers = ["48 + 24 = 72\n#### 72", "She has 10 apples.", "So #### 1,000"]
    got = rescore(tmp_path, capsys, "math/gsm8k", answers, refs)
    assert got["metrics"] == pytest.approx({"math_exact_match": 1.0, "invalid_rate": 0.0})
    assert got["metrics_paper"] == pytest.approx(
        {"accuracy": 2 / 3, "format_errors": 1, "invalid_rate": 1 / 3}
    )


def test_svamp_self_consistency_in_the_paper(tmp_path, capsys):
    gold = "( 76.0 - 25.0 ) = 51\n#### 51"
    answers = [gold, "( 10.0 + 5.0 ) = 15\n#### 15", "( 2.0 * 3.0 ) = 6", "51"]
    got = rescore(tmp_path, capsys, "math/svamp", answers, [gold] * 4)
    # peftbench compares the final number with the gold: rows 1 and 4
    assert got["metrics"] == pytest.approx({"math_exact_match": 0.5, "invalid_rate": 0.0})
    # the paper: any self-consistent equation counts (rows 1-3); "51" is a format error
    assert got["metrics_paper"] == pytest.approx(
        {"accuracy": 0.75, "format_errors": 1, "gold_exact_equation": 1, "invalid_rate": 0.25}
    )


def test_mathqa_letters(tmp_path, capsys):
    # peftbench reads every answer (A-E); the paper only exact letters: "b)" (ref b, the 2nd label) becomes a,
    # "answer: d" becomes b: preds a a c b e -> a 2/3, b 0, c 1, d 0, e 1 -> macro 8/15
    refs = ["A", "B", "C", "D", "E"]
    got = rescore(tmp_path, capsys, "math/mathqa", ["a", "B)", "c", "Answer: D", "e"], refs)
    assert got["metrics"] == pytest.approx({"accuracy": 1.0, "f1_macro": 1.0, "invalid_rate": 0.0})
    assert got["metrics_paper"] == pytest.approx(
        {"f1_macro": 8 / 15, "exact_match": 0.6, "invalid_rate": 0.4}
    )


def test_record_counts_a_query_once_per_gold_in_the_paper(tmp_path, capsys):
    # row 1: "Paris" vs [Eiffel Tower, Paris]: EM 1, F1 1; row 2: "Barack Obama" vs [Obama]: EM 0, F1 2/3
    refs = [["Eiffel Tower", "Paris"], ["Obama"]]
    got = rescore(tmp_path, capsys, "superglue/record", ["Paris", "Barack Obama"], refs)
    assert got["metrics"] == pytest.approx(
        {"record_em": 0.5, "record_f1": (1 + 2 / 3) / 2, "invalid_rate": 0.0}
    )
    # weights 2 and 1: EM 2/3, F1 (2 + 2/3) / 3
    assert got["metrics_paper"] == pytest.approx(
        {"record_em": 2 / 3, "record_f1": (2 + 2 / 3) / 3, "invalid_rate": 0.0}
    )


def test_code_lower_cased_in_the_paper(tmp_path, capsys):
    ref = "def Add(a, b):\n    return a + b\n"
    got = rescore(tmp_path, capsys, "code/conala", ["def add(a, b):\n    return a + b\n", ""], [ref, ref])
    from codebleu import calc_codebleu

    lower = calc_codebleu([ref.lower(), ref.lower()], [ref.lower(), ""], lang="python")["codebleu"]
    raw = calc_codebleu([ref, ref], ["def add(a, b):\n    return a + b\n", ""], lang="python")["codebleu"]
    assert got["metrics_paper"] == pytest.approx({"codebleu": lower, "invalid_rate": 0.5})
    assert got["metrics"] == pytest.approx({"codebleu": raw, "invalid_rate": 0.5})
    assert raw < lower  # the paper forgives case


def test_bad_file_is_a_clear_error(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(ValueError, match="'generated' and 'reference'"):
        main(["--predictions", str(path), "--dataset", "glue/sst2"])


def test_cli_in_a_subprocess(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"generated": a, "reference": "A"}) + "\n" for a in ["A", "B"]))
    out = subprocess.run(
        [sys.executable, "-m", "bench.rescore", "--predictions", str(path), "--dataset", "others/winogrande"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    got = json.loads(out)
    # refs all A, answers A, B: accuracy 1/2; paper F1 of B: no B reference, one B predicted -> 0
    assert got["metrics"]["accuracy"] == 0.5 and got["metrics_paper"]["f1"] == 0.0


def test_a_finished_run_rescored_in_place_keeps_its_training_results(compose, tmp_path):
    from bench.rescore import rescore_run
    from bench.run import run_experiment
    from tests.conftest import TINY

    cfg = compose(*TINY, "method=lora", "trainer.max_steps=2", "dataset.max_eval_samples=4")
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "success", record.get("traceback")
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert all(row["id"].split("-")[-1].isalnum() and len(row["id"].split("-")[-1]) == 8 for row in rows)
    assert len({row["id"] for row in rows}) == len(rows)
    assert {"metrics", "metrics_paper", "convention"} <= set(record) and record["convention"] == "peftbench"
    old = json.loads((tmp_path / "result.json").read_text())
    old["metrics"]["f1_macro"] = 0.123  # as if an older scorer had computed it
    (tmp_path / "result.json").write_text(json.dumps(old))
    new = rescore_run(tmp_path)
    assert new["metrics"]["f1_macro"] == pytest.approx(record["metrics"]["f1_macro"])
    assert new["metrics_before_rescore"][-1]["metrics"]["f1_macro"] == 0.123
    assert new["metrics_before_rescore"][-1]["rescored_at"]
    untouched = {k: v for k, v in old.items() if k not in (*RESCORED, "metrics_before_rescore")}
    assert {k: new[k] for k in untouched} == untouched  # training, timing, config: as they were
    assert json.loads((tmp_path / "result.json").read_text())["metrics"] == new["metrics"]


def test_a_paper_prompt_run_is_rescored_in_its_label_words(compose, tmp_path):
    """result.json keeps the composed config (our label words A/B); a run with dataset.prompt_style=paper
    answered in the paper's (choice1/choice2), so re-scoring must put the paper's labels in place first."""
    from omegaconf import OmegaConf

    from bench.rescore import rescore_run

    cfg = compose("dataset=superglue/copa", "dataset.prompt_style=paper")
    record = {"status": "success", "config": OmegaConf.to_container(cfg, resolve=True), "metrics": {}}
    (tmp_path / "result.json").write_text(json.dumps(record))
    rows = [("choice1", "choice1"), ("choice2", "choice2"), ("choice1", "choice2"), ("maybe", "choice1")]
    (tmp_path / "predictions.jsonl").write_text(
        "".join(json.dumps({"generated": g, "reference": r}) + "\n" for g, r in rows)
    )
    new = rescore_run(tmp_path)
    # 2 right of 4; one wrong, one invalid
    assert new["metrics"]["accuracy"] == pytest.approx(0.5)
    assert new["metrics"]["invalid_rate"] == pytest.approx(0.25)
