"""The search core (bench/search.py): spaces, the equal budget, validation-only selection, search.json."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from bench import CONF_DIR, PROJECT_DIR
from bench.config.schema import SearchConfig
from bench.errors import ConfigError
from bench.search import (
    CellRecord,
    SearchRecord,
    TrialRecord,
    cell_space,
    edge_keys,
    objective_value,
    read_search,
    search_path,
    select,
    trials,
    write_search,
)

LR = "trainer.learning_rate_scale"


def _search(name: str = "lr") -> SearchConfig:
    """conf/search/<name>.yaml merged into its schema (lr_loss's defaults list read by hand)."""
    raw = OmegaConf.load(CONF_DIR / "search" / f"{name}.yaml")
    base = OmegaConf.structured(SearchConfig)
    for parent in [d for d in raw.pop("defaults", []) if d != "_self_"]:
        base = OmegaConf.merge(base, OmegaConf.load(CONF_DIR / "search" / f"{parent}.yaml"))
    return OmegaConf.merge(base, raw)


def _trial(scale, validation, test=None, status="success", loss=None, lr=None) -> TrialRecord:
    """A trial built from a result.json-like record that has both a validation and a test score."""
    record = {
        "status": status,
        "headline_value": test,  # the test split's score: a search must never look at it
        "validation": None
        if validation is None
        else {"headline_value": validation, "eval_runtime_s": 1.5, "n": 6, "n_available": 9, "cap": 6},
        "best_val_loss": loss,
        "learning_rate": lr,
        "wall_time_s": 10.0,
        "train_runtime_s": 8.0,
    }
    return TrialRecord.from_result(f"k{scale}", f"/r/k{scale}", {LR: scale}, record, "headline")


def test_lr_space_is_five_log_spaced_values_and_soft_prompts_search_wider():
    lr = _search("lr")
    assert cell_space(lr, "reparametrized") == {LR: [0.1, 0.3162, 1.0, 3.162, 10.0]}
    assert cell_space(lr, "soft_prompt") == {LR: [0.01, 0.1, 1.0, 10.0, 100.0]}
    assert trials(lr, "adapter") == [{LR: v} for v in (0.1, 0.3162, 1.0, 3.162, 10.0)]
    assert trials(lr, "soft_prompt")[0] == {LR: 0.01} and len(trials(lr, "soft_prompt")) == lr.budget == 5
    loss = _search("lr_loss")
    assert (loss.name, loss.objective, loss.budget, loss.max_validation_samples) == (
        "lr_loss",
        "loss",
        5,
        None,
    )


def test_trials_are_the_grid_in_key_order():
    search = SearchConfig(name="two", budget=4, space={"a": [1, 2], "b": ["x", "y"]})
    assert trials(search, "reparametrized") == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]


def test_a_family_with_another_budget_is_an_error_naming_it():
    search = SearchConfig(
        name="lr", budget=3, space={LR: [0.1, 1.0, 10.0]}, family_space={"soft_prompt": {LR: [0.1, 1.0]}}
    )
    assert len(trials(search, "reparametrized")) == 3
    with pytest.raises(ConfigError) as err:
        trials(search, "soft_prompt")
    text = str(err.value)
    assert "'soft_prompt' gets 2 trials from search.family_space.soft_prompt" in text
    assert "search.budget=3" in text and "same budget" in text
    with pytest.raises(ConfigError, match="'selective' gets 3 trials from search.space"):
        trials(SearchConfig(name="lr", budget=5, space={LR: [0.1, 1.0, 10.0]}), "selective")


def test_validation_wins_where_the_test_split_would_choose_another_trial():
    # Trial 0.1 is best on test (0.90) but worst on validation; 10 is best on validation (0.70).
    records = [_trial(0.1, 0.50, test=0.90), _trial(1.0, 0.60, test=0.80), _trial(10.0, 0.70, test=0.60)]
    assert [t.objective for t in records] == [0.50, 0.60, 0.70]  # read from "validation" only
    choice = select(records, "headline", {LR: [0.1, 1.0, 10.0]}, {LR: 1.0})
    assert choice.index == 2 and choice.settings == {LR: 10.0} and choice.objective == 0.70
    assert choice.at_edge == [LR]


def test_loss_objective_picks_the_lowest_validation_loss():
    records = [
        TrialRecord.from_result("a", "/a", {LR: 0.1}, {"status": "success", "best_val_loss": 2.5}, "loss"),
        TrialRecord.from_result("b", "/b", {LR: 1.0}, {"status": "success", "best_val_loss": 1.25}, "loss"),
        TrialRecord.from_result(
            "c",
            "/c",
            {LR: 10.0},
            {"status": "success", "best_val_loss": 1.75, "headline_value": 0.99},
            "loss",
        ),
    ]
    choice = select(records, "loss", {LR: [0.1, 1.0, 10.0]}, {LR: 1.0})
    assert (choice.index, choice.objective, choice.at_edge) == (1, 1.25, [])


def test_ties_go_to_the_value_closest_to_the_default_by_log_distance():
    # 0.3162 and 10 tie; |log(0.3162)| = 1.15 < |log 10| = 2.30, so 0.3162 wins though 10 comes later
    # and 0.1 (listed first) is lower.
    records = [_trial(0.1, 0.4), _trial(0.3162, 0.8), _trial(3.162, 0.7), _trial(10.0, 0.8)]
    choice = select(list(reversed(records)), "headline", None, {LR: 1.0})
    assert choice.settings == {LR: 0.3162} and choice.at_edge == []
    # equal distances (0.1 and 10 around 1): the first one listed
    assert select([_trial(10.0, 0.5), _trial(0.1, 0.5)], "headline", None, {LR: 1.0}).settings == {LR: 10.0}
    assert select([_trial(0.1, 0.5), _trial(10.0, 0.5)], "headline", None, {LR: 1.0}).settings == {LR: 0.1}


def test_failed_diverged_or_unscored_trials_never_win():
    records = [
        _trial(0.1, 0.99, status="failed"),
        _trial(0.3162, 0.98, status="diverged"),
        _trial(1.0, None),  # succeeded but no validation block
        _trial(3.162, float("nan")),
        _trial(10.0, 0.10),
    ]
    assert [t.objective for t in records] == [None, None, None, None, 0.10]
    choice = select(records, "headline", {LR: [0.1, 0.3162, 1.0, 3.162, 10.0]}, {LR: 1.0})
    assert choice.settings == {LR: 10.0} and choice.at_edge == [LR]
    nothing = select(records[:4], "headline", None, {LR: 1.0})
    assert (nothing.index, nothing.settings, nothing.objective, nothing.at_edge) == (None, None, None, [])


def test_edge_is_the_smallest_or_largest_numeric_value_of_the_range():
    space = {LR: [0.1, 1.0, 10.0], "b": ["x", "y"], "c": [5]}
    assert edge_keys({LR: 0.1, "b": "x", "c": 5}, space) == [LR]  # categorical and 1-value keys: no edge
    assert edge_keys({LR: 1.0, "b": "y", "c": 5}, space) == []


def test_objective_value_reads_validation_only_and_rejects_an_unknown_objective():
    record = {"status": "success", "headline_value": 0.9, "validation": {"headline_value": 0.4}}
    assert objective_value(record, "headline") == 0.4
    assert (
        objective_value({"status": "success", "headline_value": 0.9, "validation": None}, "headline") is None
    )
    assert objective_value(None, "headline") is None
    with pytest.raises(ConfigError, match="search.objective='accuracy'"):
        objective_value(record, "accuracy")


def test_search_json_round_trips_and_merges_cells(tmp_path):
    search = _search("lr")
    record = SearchRecord.from_config(search, git_commit="abc")
    cell = CellRecord(
        "tiny", "lora", "reparametrized", "glue/sst2", cell_space(search, "reparametrized"), {LR: 1.0}
    )
    cell.trials = [
        _trial(0.1, 0.5, lr=1e-5),
        _trial(1.0, 0.7, lr=1e-4),
        _trial(10.0, None, status="failed", lr=1e-3),
    ]
    cell.trials.append(TrialRecord("k3", "/r/k3", {LR: 3.162}))  # not run yet
    cell.choose("headline", device="cpu")
    cell.final = {"tuned": ["t1", "t2"], "default": ["t1", "t2"]}
    record.merge([cell])
    path = search_path(tmp_path, "lr")
    assert path == tmp_path / "searches" / "lr" / "search.json"
    write_search(path, record)
    data = json.loads(path.read_text())
    assert list(data)[:4] == ["search", "objective", "objective_split", "budget"]
    assert (data["search"], data["objective_split"], data["budget"], data["final_seeds"]) == (
        "lr", "validation", 5, [42, 123, 456])  # fmt: skip
    assert data["space"] == {LR: [0.1, 0.3162, 1.0, 3.162, 10.0]} and data["include_default"] is True
    assert data["family_space"] == {"soft_prompt": {LR: [0.01, 0.1, 1.0, 10.0, 100.0]}}
    (saved,) = data["cells"]
    assert saved["chosen"] == {LR: 1.0} and saved["chosen_objective"] == 0.7
    assert saved["chosen_learning_rate"] == 1e-4 and saved["at_edge"] == []
    assert saved["budget_spent"] == {
        "trials": 3, "trials_succeeded": 2, "wall_time_s": 30.0, "device_hours": round(30 / 3600, 6),
        "device": "cpu",
    }  # fmt: skip
    assert saved["trials"][0] == {
        "run_key": "k0.1", "run_dir": "/r/k0.1", "settings": {LR: 0.1}, "learning_rate": 1e-5,
        "status": "success", "objective": 0.5, "wall_time_s": 10.0, "train_runtime_s": 8.0,
        "eval_runtime_s": 1.5, "validation_n": 6, "validation_n_available": 9,
    }  # fmt: skip
    assert saved["trials"][2]["validation_n"] is None  # failed: no validation block
    assert read_search(path).to_dict() == data  # updated_at included
    # A relaunch replaces its cells and keeps the others.
    again = read_search(path)
    other = CellRecord("tiny", "ia3", "reparametrized", "glue/sst2", {}, {})
    changed = CellRecord("tiny", "lora", "reparametrized", "glue/sst2", {}, {}, chosen={LR: 0.1})
    again.merge([other, changed])
    assert [(c.method, c.chosen) for c in again.cells] == [("lora", {LR: 0.1}), ("ia3", None)]
    assert read_search(tmp_path / "nothing.json") is None


def test_core_imports_without_torch_or_hydra():
    code = "import sys, bench.search; print(sorted(m for m in ('torch', 'hydra') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_DIR)
    assert out.stdout.strip() == "[]", out.stderr


# --- the front end (bench/search_launch.py): no run is launched here ------------------------------------

TINY_CELL = ("model=tiny-random", "dataset=demo/ticket_routing")
SPACE3 = ("search.budget=3", f"search.space={{{LR}:[0.1,1,10]}}")


def test_multirun_blocks_are_full_grids_of_exactly_the_runs():
    from bench.search_launch import multirun_blocks

    def runs(method, scales, seeds=("1",)):
        return [{"method": method, "seed": s, LR: x} for x in scales for s in seeds]

    # 2 methods x 3 scales: one multirun
    assert multirun_blocks(runs("lora", ("0.1", "1", "10")) + runs("ia3", ("0.1", "1", "10"))) == [
        {"method": ["lora", "ia3"], "seed": ["1"], LR: ["0.1", "1", "10"]}
    ]
    # chosen 10 for lora and 0.1 for ia3 (2 seeds): not a grid, so one multirun per method
    blocks = multirun_blocks(runs("lora", ("10",), ("1", "2")) + runs("ia3", ("0.1",), ("1", "2")))
    assert blocks == [
        {"method": ["lora"], "seed": ["1", "2"], LR: ["10"]},
        {"method": ["ia3"], "seed": ["1", "2"], LR: ["0.1"]},
    ]
    # runs with other keys (default runs set no scale) and a duplicate: separate, and once
    plain = [{"method": "lora", "seed": "1"}, {"method": "ia3", "seed": "1"}, {"method": "lora", "seed": "1"}]
    assert multirun_blocks(plain + runs("lora", ("10",))) == [
        {"method": ["lora", "ia3"], "seed": ["1"]},
        {"method": ["lora"], "seed": ["1"], LR: ["10"]},
    ]
    # an L-shape (one trial of 2 x 2 finished) becomes 2 grids that launch exactly the 3 others
    shape = runs("lora", ("1",)) + runs("ia3", ("0.1", "1"))
    assert multirun_blocks(shape) == [
        {"method": ["lora"], "seed": ["1"], LR: ["1"]},
        {"method": ["ia3"], "seed": ["1"], LR: ["0.1", "1"]},
    ]


def test_override_values_read_back_as_the_same_values():
    from bench.search_launch import override_value

    assert [override_value(v) for v in (True, None, 0.3162, 10, "glue/sst2", [1, 2.5])] == [
        "true", "null", "0.3162", "10", "glue/sst2", "[1,2.5]",
    ]  # fmt: skip
    assert override_value("a b") == "'a b'" and override_value({"r": 8}) == "{r:8}"


def _main(capsys, *args):
    from bench.search_launch import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_front_end_refuses_a_missing_search_a_seed_and_an_unequal_budget(capsys, cache_dir):
    code, text = _main(capsys, "--dry-run", *TINY_CELL)
    assert code == 2 and "no search given: add search=<name> (conf/search: lr, lr_loss)" in text
    code, text = _main(capsys, "--dry-run", "search=lr", "seed=3", *TINY_CELL)
    assert code == 2 and "seed=3: a search sets the seeds itself" in text
    # 3 trials for lora's family, but prompt tuning's family keeps lr.yaml's 5
    code, text = _main(capsys, "--dry-run", "search=lr", *SPACE3, "method=lora,prompt_tuning", *TINY_CELL)
    assert code == 2 and "'soft_prompt' gets 5 trials from search.family_space.soft_prompt" in text
    code, text = _main(capsys, "--dry-run", "search=lr", "method=lora", "dataset.val_fraction=0", *TINY_CELL)
    assert code == 2 and "dataset.val_fraction=0 holds out no validation rows" in text
    code, text = _main(capsys, "--dry-run", "search=lr", "method=lora", "trainer.batch_size=4,8", *TINY_CELL)
    assert code == 2 and "tiny-random / lora / demo/ticket_routing appears 2 times in the grid" in text


def test_dry_run_lists_the_same_trials_for_every_method(capsys, tmp_path, cache_dir):
    code, text = _main(
        capsys, "--dry-run", "search=lr", "method=lora,ia3,prompt_tuning", *TINY_CELL,
        f"paths.results_dir={tmp_path}", f"paths.cache_dir={cache_dir}",
    )  # fmt: skip
    assert code == 0, text
    lines = text.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == [
        "tiny-random / lora (reparametrized) / demo/ticket_routing: 5 trials",
        "tiny-random / ia3 (reparametrized) / demo/ticket_routing: 5 trials",
        "tiny-random / prompt_tuning (soft_prompt) / demo/ticket_routing: 5 trials",
    ]
    scales = [line.split(":")[0].strip() for line in lines if line.startswith("  ")]
    assert scales[-5:] == [f"{LR}={v}" for v in ("0.01", "0.1", "1.0", "10.0", "100.0")]
    assert all(line.split()[-2] == "missing" for line in lines if line.startswith("  "))


def test_trial_and_final_run_keys_are_those_of_the_runs_bench_launches(compose, cache_dir, tmp_path):
    """Stage 1's keys are the keys of runs with the validation settings; the default final run is the plain
    run (scale 1.0 left out of the key), so one that exists is reused."""
    from bench.config.run_key import run_key
    from bench.search_launch import Planner

    where = (f"paths.results_dir={tmp_path}", f"paths.cache_dir={cache_dir}")
    with _hydra():
        planner = Planner(["search=lr", *SPACE3, "method=lora,ia3", *TINY_CELL, *where])
        cells = planner.cells()
        finals = {c.method: planner.final_runs(c, {LR: 10.0}) for c in cells}
    for cell in cells:
        assert cell.default == {LR: 1.0} and [s for s, _ in cell.trials] == [{LR: 0.1}, {LR: 1}, {LR: 10}]
        for settings, run in cell.trials:
            cfg = compose(
                *TINY_CELL, *where, f"method={cell.method}", "seed=42", "eval.validation=true",
                "eval.test=false", "eval.max_validation_samples=200", f"{LR}={settings[LR]}",
            )  # fmt: skip
            assert run.run_key == run_key(cfg) and run.run_dir == tmp_path / run.run_key
        tuned, default = finals[cell.method]
        for seed, t, d in zip((42, 123, 456), tuned, default, strict=True):
            plain = compose(*TINY_CELL, *where, f"method={cell.method}", f"seed={seed}")
            assert d.run_key == run_key(plain) and d.overrides["seed"] == str(seed) and LR not in d.overrides
            assert t.run_key == run_key(compose(*TINY_CELL, *where, f"method={cell.method}", f"seed={seed}",
                                                f"{LR}=10.0"))  # fmt: skip
            assert t.run_key != d.run_key
    assert cells[0].trials[1][1].run_key != run_key(
        compose(*TINY_CELL, *where, "method=lora")
    )  # validation on


def test_plain_entry_point_points_searches_to_bench_search():
    out = subprocess.run(
        [sys.executable, "-m", "bench", "search=lr", "method=lora"], capture_output=True, text=True,
        cwd=PROJECT_DIR,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip() == "bench: search=lr: searches run with `python -m bench.search search=lr ...`"


def _hydra():
    """A fresh Hydra config dir context, with the schema and the run_key resolver registered."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench.config.run_key import register_resolver
    from bench.config.schema import register_configs

    register_configs()
    register_resolver()
    GlobalHydra.instance().clear()
    return initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3")


def _planner(*args):
    from bench.search_launch import Planner

    with _hydra():
        planner = Planner(list(args))
        return planner, planner.cells()


def test_loss_objective_trials_predict_no_validation_rows(tmp_path, cache_dir):
    _, (cell,) = _planner("search=lr_loss", "method=lora", *TINY_CELL, f"paths.results_dir={tmp_path}")
    overrides = cell.trials[0][1].overrides
    keys = ("eval.validation", "eval.test", "eval.max_validation_samples")
    assert [overrides[k] for k in keys] == ["false", "false", "null"]
    _, (cell,) = _planner("search=lr", "method=lora", *TINY_CELL, f"paths.results_dir={tmp_path}")
    overrides = cell.trials[0][1].overrides
    assert [overrides[k] for k in keys] == ["true", "false", "200"]


def _write_status(run, status):
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / "result.json").write_text(json.dumps({"status": status, "run_key": run.run_key}))


def test_only_unfinished_runs_are_launched_and_diverged_trials_are_kept(tmp_path, cache_dir, monkeypatch):
    from bench import search_launch

    _, cells = _planner(
        "search=lr",
        *SPACE3,
        "method=lora,ia3",
        *TINY_CELL,
        "hardware=slurm_cpu",
        f"paths.results_dir={tmp_path}",
    )
    runs = [run for cell in cells for _, run in cell.trials]
    for run, status in zip(runs[:5], ["success", "diverged", "failed", "success", "success"], strict=True):
        _write_status(run, status)  # ia3's 10 has no result.json (never ran)
    commands = []
    monkeypatch.setattr(search_launch, "run_multirun", commands.append)
    assert search_launch.launch(runs, "stage 1") == 2
    blocks = [[a for a in cmd[4:] if a.startswith(("method=", LR))] for cmd in commands]
    assert blocks == [["method=lora,ia3", f"{LR}=10"]]  # lora's failed 10 and ia3's missing one: a grid
    assert all(cmd[:4] == [sys.executable, "-m", "bench", "--multirun"] for cmd in commands)
    assert "hardware=slurm_cpu" in commands[0]  # the user's overrides pass through: SLURM launches the stage
    for run in runs:
        _write_status(run, "success")
    commands.clear()
    assert search_launch.launch(runs, "stage 1") == 0 and commands == []


def _write_trial(run, value, status="success"):
    """A trial's result.json: its validation score over 6 of 9 held-out rows (cap 200)."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    validation = {"headline_value": value, "n": 6, "n_available": 9, "cap": 200}
    record = {"status": status, "learning_rate": 0.1, "wall_time_s": 3.0, "headline_value": None,
              "validation": validation if status == "success" else None}  # fmt: skip
    (run.run_dir / "result.json").write_text(json.dumps(record))


def _launched(command):
    return [a for a in command if a.startswith(("method=", LR, "seed="))]


def test_a_cell_without_a_successful_trial_gets_no_choice_and_no_final_runs(
    tmp_path, cache_dir, monkeypatch, capsys
):
    from bench import search_launch

    args = ["search=lr", *SPACE3, "method=lora,ia3", *TINY_CELL, f"paths.results_dir={tmp_path}"]
    commands = []
    monkeypatch.setattr(search_launch, "run_multirun", commands.append)
    with _hydra():
        planner = search_launch.Planner(args)
        cells = planner.cells()
        lora, ia3 = cells
        for _, run in lora.trials:  # lora's trials all diverge (finished); ia3's succeed, 1 best
            _write_trial(run, None, status="diverged")
        for (_, run), value in zip(ia3.trials, (0.2, 0.5, 0.4), strict=True):
            _write_trial(run, value)
        code = search_launch.run_search(planner, cells)
    out = capsys.readouterr().out
    assert code == 1  # lora has no choice
    record = read_search(tmp_path / "searches" / "lr" / "search.json")
    by_method = {c.method: c for c in record.cells}
    assert by_method["lora"].chosen is None and by_method["lora"].final == {"tuned": [], "default": []}
    assert [t.status for t in by_method["lora"].trials] == ["diverged"] * 3
    assert by_method["ia3"].chosen == {LR: 1} and by_method["ia3"].chosen_objective == 0.5
    assert (
        len(by_method["ia3"].final["tuned"]) == 3
        and by_method["ia3"].final["tuned"] == by_method["ia3"].final["default"]
    )
    assert "chosen: none (no trial succeeded): no final runs" in out
    # stage 1 had nothing to relaunch (diverged trials are finished); stage 2 ran ia3's 3 final seeds only
    assert "stage 1 (trials, validation only): all 6 runs had finished; nothing launched" in out
    assert [_launched(c) for c in commands] == [["method=ia3", "seed=42,123,456"]]
    assert f"bench.search: {shlex.join(commands[0])}" in out  # the real command, interpreter included
    assert "validation rows 6 of 9, cap 200" in out


def test_stage_2_waits_for_every_trial_of_its_cell(tmp_path, cache_dir, monkeypatch, capsys):
    """A choice among 2 of 3 trials is not the search's: the cell gets no final runs until a relaunch has
    finished its third trial, and then stage 2 runs once."""
    from bench import search_launch

    args = ["search=lr", *SPACE3, "method=lora", *TINY_CELL, f"paths.results_dir={tmp_path}"]
    commands = []
    monkeypatch.setattr(search_launch, "run_multirun", commands.append)  # the failed trial fails again
    with _hydra():
        planner = search_launch.Planner(args)
        (cell,) = planner.cells()
        (_, low), (_, middle), (_, high) = cell.trials
        _write_trial(low, 0.2)
        _write_trial(middle, None, status="failed")
        _write_trial(high, 0.4)
        code = search_launch.run_search(planner, [cell])
        out = capsys.readouterr().out
        assert code == 1
        assert [_launched(c) for c in commands] == [["method=lora", "seed=42", f"{LR}=1"]]  # stage 1 only
        (saved,) = read_search(search_path(tmp_path, "lr")).cells
        assert saved.chosen is None and saved.final == {"tuned": [], "default": []}
        assert saved.budget_spent["trials"] == 3 and saved.budget_spent["trials_succeeded"] == 2
        assert "stage 1 incomplete: 2 of 3 trials finished; relaunch to finish them" in out
        assert "stage 2 (final seeds, test split): nothing to run" in out

        # The relaunch finishes the trial (the best one now) and runs the final seeds at its setting.
        commands.clear()
        monkeypatch.setattr(
            search_launch,
            "run_multirun",
            lambda command: (commands.append(command), _write_trial(middle, 0.9)),
        )
        code = search_launch.run_search(planner, [cell])
        out = capsys.readouterr().out
    assert [_launched(c) for c in commands] == [
        ["method=lora", "seed=42", f"{LR}=1"],
        ["method=lora", "seed=42,123,456"],  # chose the default: tuned and default runs are the same
    ]
    (saved,) = read_search(search_path(tmp_path, "lr")).cells
    assert saved.chosen == {LR: 1} and saved.chosen_objective == 0.9 and len(saved.final["tuned"]) == 3
    assert "stage 1 incomplete" not in out and code == 1  # the final runs were only recorded, not run


def test_another_grid_s_cells_written_meanwhile_survive(tmp_path, cache_dir, monkeypatch):
    """Two bench.search of one search at once: each write re-reads search.json under its lock and merges."""
    import threading

    from bench import search_launch
    from bench.lock import run_lock
    from bench.search import save_cells

    args = ["search=lr", *SPACE3, "method=lora", *TINY_CELL, f"paths.results_dir={tmp_path}"]
    path = search_path(tmp_path, "lr")
    other = CellRecord("tiny-random", "ia3", "reparametrized", "glue/sst2", {LR: [0.1, 1, 10]}, {LR: 1.0})
    with _hydra():
        planner = search_launch.Planner(args)
        (cell,) = planner.cells()
        for (_, run), value in zip(cell.trials, (0.2, 0.5, 0.4), strict=True):
            _write_trial(run, value)
        ours = SearchRecord.from_config(planner.search)

        def another_grid(command):  # while this search's stage 2 runs, another grid saves its cell
            save_cells(path, ours, [other])

        monkeypatch.setattr(search_launch, "run_multirun", another_grid)
        assert search_launch.run_search(planner, [cell]) == 1  # its final runs never ran
    assert [(c.method, c.chosen) for c in read_search(path).cells] == [("lora", {LR: 1}), ("ia3", None)]

    # A write waits for the lock's holder, then merges into what the holder wrote.
    later = CellRecord(
        "tiny-random", "lora", "reparametrized", "demo/ticket_routing", {}, {}, chosen={LR: 10}
    )
    with run_lock(path.parent):
        writer = threading.Thread(target=save_cells, args=(path, ours, [later]))
        writer.start()
        writer.join(timeout=0.5)
        assert writer.is_alive()  # blocked on the lock
        held = read_search(path)
        held.merge([CellRecord("tiny-random", "ia3", "reparametrized", "demo/ticket_routing", {}, {})])
        write_search(path, held)
    writer.join(timeout=10)
    saved = [(c.method, c.dataset, c.chosen) for c in read_search(path).cells]
    assert saved == [
        ("lora", "demo/ticket_routing", {LR: 10}),
        ("ia3", "glue/sst2", None),
        ("ia3", "demo/ticket_routing", None),
    ]


def test_a_record_of_other_search_settings_is_refused_before_anything_runs(tmp_path, cache_dir, monkeypatch):
    from bench import search_launch

    args = ["search=lr", *SPACE3, "method=lora", *TINY_CELL, f"paths.results_dir={tmp_path}"]
    planner, cells = _planner(*args)
    write_search(search_path(tmp_path, "lr"), SearchRecord.from_config(planner.search))
    commands = []
    monkeypatch.setattr(search_launch, "run_multirun", commands.append)
    planner, cells = _planner(*args, "search.final_seeds=[7]")
    with pytest.raises(ConfigError, match=r"final_seeds: \[42, 123, 456\] there, \[7\] here"):
        search_launch.run_search(planner, cells)
    # another space (the same budget), another soft-prompt space, or no default runs: refused too
    folder = tmp_path / "searches" / "lr"
    for extra, differ in (
        (
            f"search.space={{{LR}:[0.1,1,3]}}",
            f"space: {{'{LR}': [0.1, 1, 10]}} there, {{'{LR}': [0.1, 1, 3]}} here",
        ),
        (f"search.family_space.soft_prompt={{{LR}:[1,2,3]}}", "family_space: {'soft_prompt': "),
        ("search.include_default=false", "include_default: True there, False here"),
    ):
        planner, cells = _planner(*args, extra)
        with pytest.raises(ConfigError) as err:
            search_launch.run_search(planner, cells)
        assert differ in str(err.value) and f"remove {folder} to start this search again" in str(err.value)
        assert "another search.name" in str(err.value)
    assert commands == []
    # a record written before the spaces were kept is not refused for them (and gains them)
    old = SearchRecord.from_config(_planner(*args)[0].search).to_dict()
    for key in ("space", "family_space", "include_default"):
        old.pop(key)
    write_search(search_path(tmp_path, "lr"), SearchRecord.from_dict(old))
    planner, cells = _planner(*args)
    assert search_launch.run_search(planner, cells) == 1  # no trial ran: nothing finished
    assert read_search(search_path(tmp_path, "lr")).space == {LR: [0.1, 1, 10]}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.test=true", "eval.test=true: a search sets eval.test itself"),
        ("eval.validation=false", "eval.validation=false: a search sets eval.validation itself"),
        ("++eval.max_validation_samples=5", "set search.max_validation_samples instead"),
        (
            f"{LR}=2",
            f"{LR}=2: {LR} is what search=lr varies; set the method's learning rate "
            "(trainer.learning_rate=...) instead",
        ),  # fmt: skip
        ("seed=3", "seed=3: a search sets the seeds itself"),
    ],
)
def test_overrides_of_what_the_search_sets_are_refused(
    override, message, capsys, cache_dir, tmp_path, monkeypatch
):
    from bench import search_launch

    commands = []
    monkeypatch.setattr(search_launch, "run_multirun", commands.append)
    args = ("search=lr", "method=lora", *TINY_CELL, f"paths.results_dir={tmp_path}", override)
    for dry in (("--dry-run",), ()):
        code, text = _main(capsys, *dry, *args)
        assert code == 2 and message in text, text
    assert commands == [] and not (tmp_path / "searches").exists()


def test_a_space_key_of_any_family_is_refused():
    from bench.search import refused_overrides

    search = SearchConfig(
        name="ep", budget=2, space={LR: [1, 2]}, family_space={"soft_prompt": {"a.b": [1, 2]}}
    )
    fix = "a.b is what search=ep varies; set the values it tries in search.space (or search.family_space)"
    fix += " instead"
    args = ["a.b=3", "trainer.learning_rate=0.1", "search.budget=2", "~a.b"]
    assert refused_overrides(search, args) == [f"a.b=3: {fix}", f"~a.b: {fix}"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("search.objective=bogus", "search.objective='bogus': expected one of headline, loss"),
        ("search.final_seeds=[]", "search.final_seeds=[]: stage 2 needs a seed at least"),
        (
            "search.max_validation_samples=0",
            "search.max_validation_samples=0: predict at least 1 validation row",
        ),
        ("search.budget=0", "search.budget=0: every cell needs at least 1 trial"),
    ],
)
def test_bad_search_settings_fail_before_anything_runs(
    override, message, capsys, cache_dir, tmp_path, monkeypatch
):
    from bench import search_launch

    commands = []
    monkeypatch.setattr(search_launch, "run_multirun", commands.append)
    args = ("search=lr", *SPACE3, "method=lora", *TINY_CELL, f"paths.results_dir={tmp_path}", override)
    for dry in (("--dry-run",), ()):
        code, text = _main(capsys, *dry, *args)
        assert code == 2 and f"search=lr: {message}" in text, text
    assert commands == []
    code, text = _main(capsys, "--dry-run", *args[:-1], "search.max_validation_samples=null")
    assert code == 0, text  # no cap: every held-out row


def test_every_objective_of_the_schema_has_a_direction():
    from bench.config.schema import SEARCH_OBJECTIVES
    from bench.search import DIRECTIONS

    assert set(DIRECTIONS) == set(SEARCH_OBJECTIVES)
