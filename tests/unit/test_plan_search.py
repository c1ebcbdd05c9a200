"""``python -m bench.plan search=<name> ...``: a search's stage-1 trials and stage-2 runs, and their cost."""

from __future__ import annotations

import json

import pytest

from bench.results import write_json_atomic

GRID = ("model=tiny-random", "method=lora,prompt_tuning", "dataset=demo/ticket_routing,glue/sst2")
SCALES = [0.1, 0.3162, 1.0, 3.162, 10.0]  # conf/search/lr.yaml
SOFT_SCALES = [0.01, 0.1, 1.0, 10.0, 100.0]  # its soft_prompt family
STAGE1 = ["seed=42", "eval.validation=true", "eval.test=false", "eval.max_validation_samples=200"]


@pytest.fixture(scope="module")
def planner(cache_dir):
    """``planner(make_plan or make_search_plan, *overrides)`` -> bench.plan.Plan (A100, 30%)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench import CONF_DIR
    from bench.config.run_key import register_resolver
    from bench.config.schema import register_configs
    from bench.plan import GPUS

    register_configs()
    register_resolver()

    def _plan(make, *overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return make([f"paths.cache_dir={cache_dir}", *overrides], GPUS["a100-40gb"], 0.3)

    return _plan


@pytest.fixture(scope="module")
def search_plan(planner, tmp_path_factory):
    from bench.plan import make_search_plan

    results = tmp_path_factory.mktemp("results")
    return planner(make_search_plan, "search=lr", *GRID, f"paths.results_dir={results}")


def test_counts_two_methods_by_two_datasets(search_plan):
    """5 trials per cell (a soft prompt too), one seed; 3 final seeds x (tuned, default) per cell."""
    plan = search_plan
    assert not plan.errors
    cells = {(c["method"], c["dataset"]): c for c in plan.cells}
    assert len(cells) == 4
    assert sum(c["trials"] for c in plan.cells) == 20
    assert sum(c["stage2_runs_max"] for c in plan.cells) == 24
    for (method, _), cell in cells.items():
        assert (cell["trials"], cell["stage2_default_runs"], cell["stage2_tuned_runs"]) == (5, 3, 3)
        scales = SOFT_SCALES if method == "prompt_tuning" else SCALES
        assert cell["trial_settings"] == [{"trainer.learning_rate_scale": s} for s in scales]
        assert cell["trial_status"] == {"new": 5}
    assert cells[("prompt_tuning", "glue/sst2")]["method_family"] == "soft_prompt"
    trial_keys = [k for c in plan.cells for k in c["trial_run_keys"]]
    default_keys = [k for c in plan.cells for k in c["default_run_keys"]]
    assert len(set(trial_keys)) == 20 and len(set(default_keys)) == 12
    assert not set(trial_keys) & set(default_keys)  # a trial at scale 1 validates only: not a final run


def test_run_keys_and_learning_rates_are_a_run_s(search_plan, compose):
    """Each trial's key is the run key `python -m bench` computes with the trial's overrides; the default
    runs are plain runs at the final seeds (scale 1 is left out of the run key)."""
    from bench.config.run_key import run_key
    from bench.training import effective_learning_rate

    cell = next(c for c in search_plan.cells if c["method"] == "prompt_tuning")
    base = ("model=tiny-random", "method=prompt_tuning", f"dataset={cell['dataset']}")
    lr = effective_learning_rate(compose(*base))
    for scale, key, trial_lr in zip(
        SOFT_SCALES, cell["trial_run_keys"], cell["trial_learning_rates"], strict=True
    ):
        overrides = (*base, *STAGE1, f"trainer.learning_rate_scale={scale}")
        assert key == run_key(compose(*overrides))
        assert trial_lr == pytest.approx(lr * scale)
    assert cell["default_run_keys"] == [run_key(compose(*base, f"seed={s}")) for s in (42, 123, 456)]


def test_costs_match_the_plain_planner(search_plan, planner):
    """Stage 2's upper bound is twice the default runs (a learning rate costs nothing); a trial costs a
    plain run minus the test prefill plus at most 200 validation rows."""
    from bench.plan import make_plan

    plain = planner(make_plan, *GRID, "seed=42,123,456")
    hours = {}
    for c in plain.cells:
        hours.setdefault((c["method"], c["dataset"]), []).append(c["est_gpu_hours"])
    for cell in search_plan.cells:
        default = hours[(cell["method"], cell["dataset"])]
        assert cell["stage2_gpu_hours_max"] == pytest.approx(2 * sum(default), rel=1e-12)
        assert cell["stage1_gpu_hours"] > 0
        assert cell["stage1_gpu_hours"] != pytest.approx(5 * default[0], rel=1e-9)  # other rows predicted


def test_trial_prediction_rows_by_hand(compose):
    """The GPU-hours test of test_plan.py for a trial: 2 epochs of 90 rows x 50 tokens (2 MFLOPs a token,
    1,000 trainable), 2 validation passes over 10 rows, then min(10, cap) validation rows and no test."""
    from bench.plan import GPUS, Counts, DataSize, estimate

    base = ("model=tiny-random", "dataset=demo/ticket_routing", "method=lora", "trainer.num_train_epochs=2",
            "trainer.batch_size=4", "trainer.eval_every=0.5", "dataset.val_fraction=0.1")  # fmt: skip
    counts = Counts(1_000, 100_000, 512 * 10**6, 1024 * 10**6)
    size = DataSize(train_rows=100, test_rows=10, tokens_per_row=50.0, longest_row_tokens=80, source="table4")
    train = 2 * 90 * 50 * (2e6 * 2 + 2 * 1_000)
    cases = {  # eval overrides -> rows predicted after training
        ("eval.validation=true", "eval.test=false", "eval.max_validation_samples=4"): 4,
        ("eval.validation=true", "eval.test=false", "eval.max_validation_samples=null"): 10,
        ("eval.validation=true", "eval.max_validation_samples=4"): 4 + 10,
        ("eval.test=false",): 0,  # a loss-objective trial: the training's validation loss only
        (): 10,
    }
    for overrides, rows in cases.items():
        est = estimate(compose(*base, *overrides), counts, size, GPUS["h100"], 0.3)
        flops = train + (2 * 10 + rows) * 50 * 2e6
        assert est["est_gpu_hours"] == pytest.approx(flops / (495e12 * 0.3) / 3600, rel=1e-12), overrides


def test_without_the_default_stage_2_runs_the_tuned_setting_only(planner):
    from bench.plan import make_search_plan

    plan = planner(
        make_search_plan, "search=lr", "search.include_default=false", "search.final_seeds=[1,2]",
        "model=tiny-random", "method=lora", "dataset=demo/ticket_routing", "seed=7,8",
    )  # fmt: skip
    (cell,) = plan.cells  # the grid's seeds do not multiply a search's cells
    assert (cell["trials"], cell["stage2_runs_max"], cell["default_run_keys"]) == (5, 2, [])


def test_done_trials_are_seen(planner, search_plan, tmp_path):
    from bench.plan import make_search_plan

    grid = ("search=lr", "model=tiny-random", "method=lora", "dataset=demo/ticket_routing")
    first = planner(make_search_plan, *grid, f"paths.results_dir={tmp_path}").cells[0]
    done = first["trial_run_keys"][2]
    write_json_atomic(tmp_path / done / "result.json", {"status": "success", "run_key": done})
    again = planner(make_search_plan, *grid, f"paths.results_dir={tmp_path}").cells[0]
    assert again["trial_status"] == {"done": 1, "new": 4}


def test_cli_json_and_an_unequal_budget(cache_dir, capsys):
    from bench.plan import SEARCH_JSON_KEYS, main

    args = ["search=lr", *GRID, f"paths.cache_dir={cache_dir}"]
    assert main([*args, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    cells = [json.loads(line) for line in out.splitlines()]
    assert len(cells) == 4 and all(set(SEARCH_JSON_KEYS) <= set(c) for c in cells)
    assert "stage 1: 20 trials" in err and "per method: lora 10, prompt_tuning 10" in err
    assert "stage 2: at most 24 runs" in err and "an upper bound" in err
    # a budget the soft-prompt grid does not fill: every cell is an error, exit 2
    assert main([*args, "search.budget=4"]) == 2
    _, err = capsys.readouterr()
    assert "4 cell(s) are invalid" in err and "every method must get the same budget" in err
    # no held-out rows: nothing to score a trial on
    assert main([*args, "dataset.val_fraction=0"]) == 2
    _, err = capsys.readouterr()
    assert "4 cell(s) are invalid" in err and "dataset.val_fraction=0 holds out no validation rows" in err


def test_a_preset_s_seeds_collapse_into_the_search_s(cache_dir, capsys):
    from bench.plan import main

    args = ["experiment=peft_bench", "search=lr", "method=peft_bench/lora", "dataset=glue/sst2"]
    assert main([*args, f"paths.cache_dir={cache_dir}", "--format", "json"]) == 0
    out, _ = capsys.readouterr()
    (cell,) = [json.loads(line) for line in out.splitlines()]  # 5 preset seeds, one searched cell
    assert cell["trial_learning_rates"] == pytest.approx([5e-5 * s for s in SCALES])
    assert (cell["trials"], cell["stage2_runs_max"]) == (5, 6)


@pytest.mark.parametrize("search", ["lr", "lr_loss"])
def test_run_keys_are_the_launcher_s(planner, search):
    """The planner counts the runs `python -m bench.search` launches: the same trial and default run keys
    (the loss objective's trials predict no validation rows)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench import CONF_DIR
    from bench.plan import make_search_plan
    from bench.search_launch import Planner

    grid = ["model=tiny-random", "method=lora,prompt_tuning", "dataset=demo/ticket_routing"]
    plan = planner(make_search_plan, f"search={search}", *grid)
    assert not plan.errors and len(plan.cells) == 2  # lora and prompt_tuning: nothing compared vacuously
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        launcher = Planner([f"search={search}", *grid])
        cells = launcher.cells()
        launched = {
            c.method: ([r.run_key for _, r in c.trials], launcher.final_runs(c, c.default)[1]) for c in cells
        }
    for cell in plan.cells:
        trial_keys, default_runs = launched[cell["method"]]
        assert cell["trial_run_keys"] == trial_keys
        assert cell["default_run_keys"] == [r.run_key for r in default_runs]


def test_a_tuned_run_costs_the_dearest_setting(planner):
    """A space over the epochs too: the tuned runs' upper bound is the 3-epoch run, the default runs the
    default's (both from the plain planner)."""
    from bench.plan import make_plan, make_search_plan

    cell = ("model=tiny-random", "method=lora", "dataset=demo/ticket_routing")
    space = (
        "++search.space={trainer.learning_rate_scale:[1.0],trainer.num_train_epochs:[1,3]}",
        "search.budget=2",
    )
    (searched,) = planner(make_search_plan, "search=lr", *space, *cell).cells
    hours = {}
    for epochs in ("1", "3", "null"):
        args = (*cell, "seed=42,123,456") + (
            (f"trainer.num_train_epochs={epochs}",) if epochs != "null" else ()
        )
        hours[epochs] = [c["est_gpu_hours"] for c in planner(make_plan, *args).cells]
    assert hours["3"][0] > hours["1"][0] == hours["null"][0]  # the default is 1 epoch
    expected = sum(hours["null"]) + 3 * hours["3"][0]
    assert searched["stage2_gpu_hours_max"] == pytest.approx(expected, rel=1e-12)


def test_bad_search_settings_and_overrides_of_what_it_sets_are_plan_errors(cache_dir, capsys):
    """The planner refuses what the launcher refuses (the grid's seeds aside: a plan ignores them)."""
    from bench.plan import main

    cell = ["model=tiny-random", "method=lora", "dataset=demo/ticket_routing", f"paths.cache_dir={cache_dir}"]
    cases = {
        "search.objective=bogus": "search=lr: search.objective='bogus': expected one of headline, loss",
        "search.final_seeds=[]": "search.final_seeds=[]: stage 2 needs a seed at least",
        "eval.test=true": "eval.test=true: a search sets eval.test itself",
        "trainer.learning_rate_scale=3": "trainer.learning_rate_scale is what search=lr varies",
    }
    for override, message in cases.items():
        assert main(["search=lr", *cell, override]) == 2, override
        _, err = capsys.readouterr()
        assert "1 cell(s) are invalid" in err and message in err, err
    assert main(["search=lr", *cell, "seed=1,2"]) == 0
