"""``python -m bench.search``: 2 methods x 1 dataset x 3 learning-rate scales, tiny-random, 2 final seeds."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from bench import PROJECT_DIR
from bench.config.run_key import run_key

LR = "trainer.learning_rate_scale"
SCALES = (0.1, 1, 10)
BASE_LR = 0.001  # trainer.learning_rate: every method's learning rate times the scale
# Score mode ranks the label words, so even a random tiny model gets validation F1 that differs by
# learning rate (generation leaves it at 0 for every trial: a tie that would test nothing).
RUN = (
    "model=tiny-random", "dataset=glue/sst2", "dataset.max_train_samples=40", "dataset.max_eval_samples=8",
    "dataset.val_fraction=0.5", "eval.mode=score", "trainer.max_steps=2", "trainer.eval_every=1.0",
    f"trainer.learning_rate={BASE_LR}",
)  # fmt: skip
SEARCH = (
    "search=lr", "search.budget=3", f"search.space={{{LR}:[0.1,1,10]}}", "search.final_seeds=[1,2]",
    "search.max_validation_samples=16",
)  # fmt: skip


def _search(*args):
    return subprocess.run(
        [sys.executable, "-m", "bench.search", *args], capture_output=True, text=True, cwd=PROJECT_DIR,
        timeout=600,
    )  # fmt: skip


def _result(run_dir) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def _expected_choice(scored: dict[float, float], better=max) -> float:
    """The best validation score; on a tie the scale closest to 1 (log distance), then the first."""
    best = better(scored.values())
    return min((s for s, v in scored.items() if v == best), key=lambda s: round(abs(math.log(s)), 9))


@pytest.mark.slow
def test_search_selects_on_validation_runs_final_seeds_and_relaunches_nothing(
    tmp_path, cache_dir, shared_mirror, compose
):
    where = (f"paths.results_dir={tmp_path}", f"paths.cache_dir={cache_dir}", f"data.mirror={shared_mirror}")
    args = (*SEARCH, "method=lora,ia3", *RUN, *where)
    first = _search(*args)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-3000:]
    assert "stage 1 (trials, validation only): 6 of 6 runs in 1 multirun(s)" in out  # one shared space

    record = json.loads((tmp_path / "searches" / "lr" / "search.json").read_text())
    assert (record["search"], record["objective"], record["objective_split"]) == (
        "lr",
        "headline",
        "validation",
    )
    assert record["budget"] == 3 and record["final_seeds"] == [1, 2]
    cells = {c["method"]: c for c in record["cells"]}
    assert sorted(cells) == ["ia3", "lora"]
    for method, cell in cells.items():
        assert cell["space"] == {LR: list(SCALES)} and cell["default"] == {LR: 1.0}  # family_space not used
        assert [t["settings"][LR] for t in cell["trials"]] == list(SCALES)  # the same 3 trials per method
        assert cell["budget_spent"]["trials"] == cell["budget_spent"]["trials_succeeded"] == 3
        scored = {}
        for trial in cell["trials"]:
            result = _result(tmp_path / trial["run_key"])
            assert result["status"] == "success" and result["seed"] == 42 and result["method"] == method
            assert result["test_evaluated"] is False and result["headline_value"] is None  # test never seen
            assert result["validation"]["n"] <= 16 and result["validation"]["cap"] == 16
            rows = (result["validation"]["n"], result["validation"]["n_available"])
            assert (trial["validation_n"], trial["validation_n_available"]) == rows == (16, 20)  # 40 x 0.5
            assert result["learning_rate"] == pytest.approx(BASE_LR * trial["settings"][LR])
            assert trial["objective"] == result["validation"]["headline_value"]
            scored[trial["settings"][LR]] = result["validation"]["headline_value"]
        chosen = _expected_choice(scored)
        assert cell["chosen"] == {LR: chosen} and cell["chosen_objective"] == scored[chosen]
        assert cell["chosen_learning_rate"] == pytest.approx(BASE_LR * chosen)
        assert cell["at_edge"] == ([LR] if chosen in (0.1, 10) else [])

        # Stage 2: the final seeds at the chosen scale, and at the default one (the plain run's key).
        assert len(cell["final"]["tuned"]) == len(cell["final"]["default"]) == 2
        for seed, tuned, default in zip(
            (1, 2), cell["final"]["tuned"], cell["final"]["default"], strict=True
        ):
            result = _result(tmp_path / tuned)
            assert result["status"] == "success" and result["seed"] == seed
            assert result["test_evaluated"] is True and result["headline_value"] is not None
            assert result["learning_rate"] == pytest.approx(BASE_LR * chosen)
            plain = compose(*RUN, *where, f"method={method}", f"seed={seed}")
            assert default == run_key(plain)  # an existing plain run is reused, not redone
            assert _result(tmp_path / default)["learning_rate"] == pytest.approx(BASE_LR)
            assert (tuned == default) == (chosen == 1)
    assert "validation rows 16 of 20, cap 16" in out
    # the validation scores differ by scale: some cell's choice is not its default (else nothing was tuned)
    assert any(cell["chosen"] != cell["default"] for cell in cells.values())
    # Every cell's 2 final seeds at its chosen scale, plus the 2 default runs where that is not 1.
    finals = sum(2 if c["chosen"] == {LR: 1} else 4 for c in cells.values())
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/result.json")}
    assert len(stamps) == 6 + finals

    # Relaunched: nothing runs, no result is touched, and the summary says so.
    again = _search(*args)
    text = again.stdout + again.stderr
    assert again.returncode == 0, text[-3000:]
    assert "stage 1 (trials, validation only): all 6 runs had finished; nothing launched" in text
    assert f"stage 2 (final seeds, test split): all {finals} runs had finished; nothing launched" in text
    assert "ran nothing: every run had finished" in text and "--multirun" not in text
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/result.json")} == stamps
    assert json.loads((tmp_path / "searches" / "lr" / "search.json").read_text())["cells"] == record["cells"]

    # The analysis: default vs tuned per method with the chosen value and the budget, trials kept apart.
    import pandas as pd

    from multirun_analysis.__main__ import main as analyse

    analyse([str(tmp_path), "--out", str(tmp_path / "tables"), "--no-plots"])
    table = pd.read_csv(tmp_path / "tables" / "search.csv").set_index("method")
    budget = pd.read_csv(tmp_path / "tables" / "search_budget.csv").set_index("method")
    for method, cell in cells.items():
        row = table.loc[method]
        default = [_result(tmp_path / k)["headline_value"] for k in cell["final"]["default"]]
        tuned = [_result(tmp_path / k)["headline_value"] for k in cell["final"]["tuned"]]
        assert row["default_mean"] == pytest.approx(100 * sum(default) / 2)
        assert row["tuned_mean"] == pytest.approx(100 * sum(tuned) / 2)
        assert json.loads(row["chosen"]) == cell["chosen"]
        assert row["trials"] == row["trials_succeeded"] == 3
        assert budget.loc[method, "trials"] == 3 and pd.isna(budget.loc[method, "unequal"])
    assert (
        "search trials (validation only, no test score): 6" in (tmp_path / "tables" / "search.md").read_text()
    )


@pytest.mark.slow
def test_loss_search_chooses_the_lowest_validation_loss(tmp_path, cache_dir, shared_mirror):
    """search=lr_loss: the trials train, predict nothing, and the lowest best_val_loss wins."""
    where = (f"paths.results_dir={tmp_path}", f"paths.cache_dir={cache_dir}", f"data.mirror={shared_mirror}")
    space = ("search=lr_loss", "search.budget=2", f"search.space={{{LR}:[0.1,10]}}", "search.final_seeds=[1]",
             "search.include_default=false")  # fmt: skip
    done = _search(*space, "method=lora", *RUN, *where)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    (cell,) = json.loads((tmp_path / "searches" / "lr_loss" / "search.json").read_text())["cells"]
    losses = {}
    for trial in cell["trials"]:
        result = _result(tmp_path / trial["run_key"])
        assert result["status"] == "success" and result["validation"] is None and not result["test_evaluated"]
        assert not (tmp_path / trial["run_key"] / "predictions.jsonl").exists()
        assert trial["objective"] == result["best_val_loss"] and trial["validation_n"] is None
        losses[trial["settings"][LR]] = result["best_val_loss"]
    assert len(set(losses.values())) == 2  # not a tie: the choice is the loss's
    chosen = _expected_choice(losses, better=min)
    assert cell["chosen"] == {LR: chosen} and cell["chosen_objective"] == losses[chosen]
    (tuned,) = cell["final"]["tuned"]
    assert cell["final"]["default"] == []  # search.include_default=false
    result = _result(tmp_path / tuned)
    assert result["test_evaluated"] and result["learning_rate"] == pytest.approx(BASE_LR * chosen)
