"""The paper presets (conf/experiment) resolve, cell by cell, to the settings ../shared/PAPERS.md gives.

A preset's grid is its ``hydra.sweeper.params``; each cell is composed as ``--multirun`` would compose it
(``experiment=<preset> method=... dataset=... seed=...``) and its resolved settings are compared with the
papers' values, written out below by hand from PAPERS.md. Trainable counts on Llama-3-8B are the
planner's test (bench.plan).
"""

from __future__ import annotations

import itertools

import pytest
from omegaconf import OmegaConf

from bench import CONF_DIR
from bench.training import effective_learning_rate

SEEDS = [42, 123, 456, 789, 101112]  # scripts/peftbench/run_exp.sh
PEFT_BENCH_METHODS = ["ia3", "prompt_tuning", "prefix_tuning", "p_tuning", "lora", "ln_tuning"]
STABILITY_DATASETS = [
    "superglue/cb",
    "superglue/copa",
    "math/svamp",
    "glue/cola",
    "superglue/wsc",
    "glue/sst2",
]
TABLE2_DATASETS = ["glue/sst2", "glue/cola", "superglue/wsc", "math/svamp"]

# PEFT-Factory's examples/peftbench/<method>/llama-3-8b-instruct/train.yaml, per method:
# (learning rate, validation fraction, validation every, batch size)
PEFT_BENCH = {
    "ia3": (5e-5, 0.1, 0.05, 4),
    "prompt_tuning": (3e-2, 0.1, 0.05, 4),
    "prefix_tuning": (1e-5, 0.2, 0.1, 4),
    "p_tuning": (1e-3, 0.1, 0.05, 4),
    "lora": (5e-5, 0.1, 0.05, 4),
    "ln_tuning": (5e-5, 0.1, 0.05, 4),
}
# PEFT-Factory Table 2 on Llama-3.2-1B-Instruct (PAPERS.md): lr 5e-5/5e-5/1e-5, batch 2/4/4, val 0.1/0.1/0.2
TABLE2 = {
    "bitfit": (5e-5, 0.1, 0.05, 2),
    "ia3": (5e-5, 0.1, 0.05, 4),
    "prefix_tuning": (1e-5, 0.2, 0.1, 4),
}
# The paper's method settings (PEFT-Bench Table 1's rows), as method.options
OPTIONS = {
    "ia3": {"target_modules": ["k_proj", "v_proj", "down_proj"], "feedforward_modules": "down_proj"},
    "prompt_tuning": {"num_virtual_tokens": 100, "prompt_tuning_init": "SAMPLE_VOCAB"},
    "prefix_tuning": {"num_virtual_tokens": 32, "prefix_projection": True, "encoder_hidden_size": 512},
    "p_tuning": {
        "num_virtual_tokens": 100,
        "encoder_reparameterization_type": "LSTM",
        "encoder_hidden_size": 768,
        "encoder_dropout": 0.1,
    },
    "lora": {
        "r": 16,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
        "target_modules": ["k_proj", "v_proj", "down_proj"],
    },
    "ln_tuning": {},
    "bitfit": {"target_modules": ["q_proj", "v_proj"], "bias_init": "linear"},  # nn.Linear init
}


def hydra_config(*overrides: str):
    """The composed config with its ``hydra`` node, as ``python -m bench --multirun`` sees it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench.config.run_key import register_resolver
    from bench.config.schema import register_configs

    register_configs()
    register_resolver()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=True)


def sweep(preset: str) -> dict[str, list[str]]:
    """The preset's sweep parameters, each a list of the values ``--multirun`` expands."""
    params = hydra_config(f"experiment={preset}").hydra.sweeper.params
    return {key: str(value).split(",") for key, value in params.items()}


def cells(preset: str) -> list[dict[str, str]]:
    params = sweep(preset)
    return [dict(zip(params, values, strict=True)) for values in itertools.product(*params.values())]


def common_settings(cfg) -> tuple:
    t = cfg.trainer
    return (
        t.warmup_ratio,
        t.weight_decay,
        t.lr_scheduler_type,
        t.max_seq_length,
        cfg.hardware.precision,
        cfg.eval.mode,
        cfg.eval.max_new_tokens,
        cfg.dataset.prompt_style,
        cfg.metric.convention,
    )


# AdamW with warmup 0.1, weight decay 1e-5, cosine; cutoff_len 2048; bf16; greedy, LLaMA-Factory's 1024;
# PEFT-Factory's prompts and compute_metrics.py's scoring
PAPER_COMMON = (0.1, 1e-5, "cosine", 2048, "bf16", "generate", 1024, "paper", "paper")


def per_method(cfg) -> tuple:
    return (
        effective_learning_rate(cfg),
        cfg.dataset.val_fraction,
        cfg.trainer.eval_every,
        cfg.trainer.batch_size,
    )


def test_peft_bench_grid_is_810_runs():
    params = sweep("peft_bench")
    assert [int(s) for s in params["seed"]] == SEEDS
    assert [m.split("/")[-1] for m in params["method"]] == PEFT_BENCH_METHODS
    assert len(params["dataset"]) == len(set(params["dataset"])) == 27
    assert len(cells("peft_bench")) == 810


def test_peft_bench_every_method_resolves_to_the_papers_settings(compose):
    for method in sweep("peft_bench")["method"]:
        cfg = compose("experiment=peft_bench", f"method={method}", "dataset=glue/sst2", "seed=42")
        name = cfg.method.name
        assert name == method.split("/")[-1]  # the variant keeps its method's name: tables group it
        assert cfg.model.name == "llama-3-8b-instruct"
        assert cfg.trainer.num_train_epochs == 20  # run_exp.sh's EPOCHS (the text's 10: peft_bench_text)
        assert per_method(cfg) == pytest.approx(PEFT_BENCH[name]), name
        assert common_settings(cfg) == PAPER_COMMON
        assert OmegaConf.to_container(cfg.method.options, resolve=True) == OPTIONS[name]


def test_peft_bench_every_dataset_cell_composes(compose):
    """Every dataset of the 27 with one method: the dataset does not undo the preset's settings."""
    for dataset in sweep("peft_bench")["dataset"]:
        cfg = compose("experiment=peft_bench", "method=peft_bench/prefix_tuning", f"dataset={dataset}")
        assert cfg.dataset.name == dataset
        assert per_method(cfg) == pytest.approx(PEFT_BENCH["prefix_tuning"]), dataset
        assert common_settings(cfg) == PAPER_COMMON


def test_peft_bench_text_is_ten_epochs_and_5e_5_for_every_method(compose):
    for method in sweep("peft_bench_text")["method"]:
        cfg = compose("experiment=peft_bench_text", f"method={method}", "dataset=glue/cola")
        assert cfg.trainer.num_train_epochs == 10
        assert per_method(cfg) == pytest.approx((5e-5, 0.1, 0.05, 4)), method
        assert common_settings(cfg) == PAPER_COMMON
    assert len(cells("peft_bench_text")) == 810


def test_one_word_alternatives(compose):
    ia3 = compose("experiment=peft_bench", "method=peft_bench/ia3_list")
    assert list(ia3.method.options.feedforward_modules) == ["down_proj"] and ia3.method.name == "ia3"
    mlp = compose("experiment=peft_bench", "method=peft_bench/p_tuning_mlp")
    assert mlp.method.options.encoder_reparameterization_type == "MLP" and mlp.method.name == "p_tuning"
    assert effective_learning_rate(mlp) == pytest.approx(1e-3)


def test_stability_preset(compose):
    params = sweep("peft_bench_stability")
    assert sorted(params["dataset"]) == sorted(STABILITY_DATASETS)
    assert [int(s) for s in params["seed"]] == SEEDS
    assert [m.split("/")[-1] for m in params["method"]] == PEFT_BENCH_METHODS
    assert len(cells("peft_bench_stability")) == 6 * 6 * 5
    for method in params["method"]:
        cfg = compose("experiment=peft_bench_stability", f"method={method}", "dataset=superglue/cb")
        assert cfg.trainer.num_train_epochs == 20
        assert per_method(cfg) == pytest.approx(PEFT_BENCH[cfg.method.name])
        assert common_settings(cfg) == PAPER_COMMON


def test_stability_cells_are_the_main_grids_runs(compose):
    """Same settings, same run key: a finished peft_bench grid is not run again by the stability study."""
    from bench.config.run_key import run_key

    overrides = ("method=peft_bench/lora", "dataset=superglue/cb", "seed=123")
    assert run_key(compose("experiment=peft_bench_stability", *overrides)) == run_key(
        compose("experiment=peft_bench", *overrides)
    )


def test_peft_factory_table2(compose):
    params = sweep("peft_factory_table2")
    assert params["dataset"] == TABLE2_DATASETS
    assert [m.split("/")[-1] for m in params["method"]] == list(TABLE2)
    assert len(cells("peft_factory_table2")) == 3 * 4 * 5
    for method in params["method"]:
        cfg = compose("experiment=peft_factory_table2", f"method={method}", "dataset=math/svamp")
        assert cfg.model.name == "llama-3.2-1b-instruct"
        assert per_method(cfg) == pytest.approx(TABLE2[cfg.method.name]), method
        assert common_settings(cfg) == PAPER_COMMON
        assert OmegaConf.to_container(cfg.method.options, resolve=True) == OPTIONS[cfg.method.name]


PRESETS = ["peft_bench", "peft_bench_text", "peft_bench_stability", "peft_factory_table2"]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("hardware", ["slurm_a100", "slurm_h100"])
def test_presets_compose_with_slurm_hardware(preset, hardware):
    """``hardware=slurm_*`` on the command line replaces the preset's gpu and brings its launcher."""
    cfg = hydra_config(f"experiment={preset}", f"hardware={hardware}")
    assert (cfg.hardware.name, cfg.hardware.device, cfg.hardware.precision) == (hardware, "cuda", "bf16")
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert [int(s) for s in str(cfg.hydra.sweeper.params.seed).split(",")] == SEEDS
