"""Every config under conf/ composes and validates (no weights load); bad keys fail naming the key."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from bench import CONF_DIR, PROJECT_DIR
from bench.config.validate import validate
from bench.errors import ConfigError

GROUPS = ("model", "method", "dataset", "metric", "hardware", "logger", "search")
# Config files per group; update the group's count when adding a config.
EXPECTED_PER_GROUP = {
    "model": 6,
    "method": 34,
    "dataset": 28,
    "metric": 1,
    "hardware": 6,
    "logger": 2,
    "search": 2,
}
EXPECTED_OTHER = [
    "config.yaml",
    "experiment/peft_bench.yaml",
    "experiment/peft_bench_stability.yaml",
    "experiment/peft_bench_text.yaml",
    "experiment/peft_factory_table2.yaml",
    "hydra/help/bench.yaml",
    "hydra/launcher/local.yaml",
    "hydra/launcher/slurm.yaml",
]


def group_options() -> list[tuple[str, str]]:
    options = []
    for group in GROUPS:
        for path in sorted((CONF_DIR / group).rglob("*.yaml")):
            options.append((group, path.relative_to(CONF_DIR / group).with_suffix("").as_posix()))
    return options


def test_walk_finds_every_config():
    found = sorted(p.relative_to(CONF_DIR).as_posix() for p in CONF_DIR.rglob("*.yaml"))
    per_group = {g: sum(1 for f in found if f.startswith(f"{g}/")) for g in GROUPS}
    assert per_group == EXPECTED_PER_GROUP
    assert sorted(set(found) - {f for f in found if f.split("/")[0] in GROUPS}) == EXPECTED_OTHER
    assert (
        len(found)
        == sum(EXPECTED_PER_GROUP.values()) + len(EXPECTED_OTHER)
        == len(group_options()) + len(EXPECTED_OTHER)
    )


@pytest.mark.parametrize(("group", "option"), group_options(), ids=lambda v: str(v))
def test_each_option_composes_and_validates(compose, group, option):
    overrides = [f"{group}={option}"]
    if group != "hardware":
        overrides.append("hardware=cpu")  # gpu hardware is validated against a real device below
    cfg = compose(*overrides)
    OmegaConf.resolve(cfg)  # every interpolation resolves
    chosen = cfg[group].name
    if group == "method" and "/" in option:  # a paper preset's variant keeps its method's name (tables group)
        assert (CONF_DIR / "method" / f"{chosen}.yaml").exists(), f"{option}.yaml says name={chosen!r}"
    else:
        assert chosen == option, f"{group}/{option}.yaml says name={chosen!r}"
    if group == "hardware" and cfg.hardware.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            with pytest.raises(ConfigError, match="no CUDA GPU"):
                validate(cfg)
            return
    validate(cfg)


def test_default_config(compose):
    cfg = compose()
    assert cfg.model.name == "smollm2-135m-instruct"
    assert cfg.method.name == "lora"
    assert cfg.dataset.name == "demo/ticket_routing"
    assert cfg.trainer.warmup_ratio == 0.1 and cfg.trainer.weight_decay == 1e-5
    assert cfg.trainer.lr_scheduler_type == "cosine" and cfg.trainer.eval_every == 0.05
    assert list(cfg.method.options.target_modules) == ["k_proj", "v_proj", "down_proj"]


def test_misspelt_key_fails_naming_it(compose):
    with pytest.raises(ConfigCompositionException) as err:
        compose("trainer.max_stepz=3")
    assert "max_stepz" in str(err.value.__cause__ or err.value)


def test_wrong_type_fails_naming_it(compose):
    with pytest.raises(ConfigCompositionException) as err:
        compose("trainer.batch_size=eight")
    assert "batch_size" in str(err.value.__cause__ or err.value)


def test_unknown_method_lists_known_ones(compose):
    with pytest.raises(Exception) as err:
        compose("method=lorra")
    message = str(err.value)
    assert "lorra" in message
    for known in ("ia3", "lora", "none", "prompt_tuning"):
        assert known in message


def test_unknown_method_option_fails_before_loading(compose):
    cfg = compose("method=lora", "+method.options.rr=8")
    with pytest.raises(
        ConfigError, match=r"method.options.rr is not a field of peft.LoraConfig.*Did you mean r\b"
    ):
        validate(cfg)


def test_common_knobs(compose):
    cfg = compose(
        "seed=7",
        "trainer.max_steps=5",
        "trainer.num_train_epochs=2",
        "trainer.learning_rate=0.01",
        "trainer.batch_size=4",
        "dataset.max_train_samples=10",
        "dataset.max_eval_samples=6",
        "data.mirror=/tmp/m",
        "paths.results_dir=/tmp/r",
    )
    assert (cfg.seed, cfg.trainer.max_steps, cfg.trainer.batch_size) == (7, 5, 4)
    assert cfg.trainer.learning_rate == 0.01 and cfg.trainer.num_train_epochs == 2
    assert (cfg.dataset.max_train_samples, cfg.dataset.max_eval_samples) == (10, 6)
    assert cfg.data.mirror == "/tmp/m" and cfg.paths.results_dir == "/tmp/r"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120
    )


def test_cli_help_lists_groups_and_options():
    out = _cli("--help")
    assert out.returncode == 0, out.stderr
    for expected in (
        "method: bitfit, bottleneck, dora, full, galore, ia3, ln_tuning, lora, loraplus, mpt, none, oft, "
        "p_tuning, p_tuning_v2, parallel_adapter, peft, pissa, prefix_tuning, prompt_tuning, qlora, "
        "seq_bottleneck, svft",
        "hardware: cpu, gpu",
        "tiny-random",
        "dataset/glue: cola, mnli, mrpc, qnli, qqp, rte, sst2, stsb",
        "trainer.max_steps",
    ):
        assert expected in out.stdout


def test_cli_cfg_job_prints_resolved_config():
    out = _cli("--cfg", "job", "--resolve", "method=ia3", "model=tiny-random")
    assert out.returncode == 0, out.stderr
    cfg = OmegaConf.create(out.stdout)
    assert cfg.method.name == "ia3" and list(cfg.method.options.feedforward_modules) == ["down_proj"]


def test_cli_typo_exits_nonzero_naming_key():
    out = _cli("trainer.max_stepz=3", "model=tiny-random")
    assert out.returncode != 0
    assert "max_stepz" in out.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["dataset=glue/sst3"],
            "Unknown dataset 'glue/sst3'. Did you mean 'glue/sst2', 'glue/stsb', 'glue/rte'? Known: code/",
        ),
        (["model=smollm3"], "Did you mean 'smollm2-135m-instruct'?"),
        (
            ["method=lora,ia4"],
            "Unknown method 'ia4'. Did you mean 'ia3', 'pissa'? Known: "
            "bitfit, bottleneck, dora, full, galore, ia3, ln_tuning, lora, loraplus, mpt, none, oft, "
            "p_tuning, p_tuning_v2, parallel_adapter, peft, peft_bench/bitfit, peft_bench/ia3, ",
        ),
    ],
)
def test_unknown_group_choice_lists_known_ones(args, expected):
    from bench.config.choices import unknown_choices

    (message,) = unknown_choices(args, CONF_DIR)
    assert expected in message


def test_known_choices_and_other_args_pass():
    from bench.config.choices import unknown_choices

    args = ["dataset=glue/sst2", "method=lora,ia3", "trainer.max_steps=3", "seed=1,2", "method.options.r=4"]
    assert unknown_choices(args, CONF_DIR) == []


def test_cli_unknown_dataset_exits_with_the_list():
    out = _cli("dataset=glue/sst3")
    assert out.returncode == 2
    assert "Unknown dataset 'glue/sst3'. Did you mean 'glue/sst2'," in out.stderr


def test_mirror_from_environment(compose, monkeypatch):
    monkeypatch.setenv("PEFTBENCH_DATA_MIRROR", "/data/hub")
    assert compose().data.mirror == "/data/hub"
    monkeypatch.delenv("PEFTBENCH_DATA_MIRROR")
    assert compose().data.mirror is None


def test_binary_f1_needs_a_positive_label(compose):
    cfg = compose("model=tiny-random", "dataset=glue/sst2", "dataset.metrics=[accuracy,f1_binary]")
    with pytest.raises(ConfigError, match="set dataset.pos_label"):
        validate(cfg)
    validate(
        compose(
            "model=tiny-random",
            "dataset=glue/sst2",
            "dataset.metrics=[accuracy,f1_binary]",
            "dataset.pos_label=positive",
            "dataset.headline_metric=f1_binary",
        )
    )


@pytest.mark.parametrize(
    ("experiment", "n_datasets"),
    [("peft_bench", 27), ("peft_bench_text", 27), ("peft_bench_stability", 6), ("peft_factory_table2", 4)],
)
def test_experiment_grids_name_only_existing_configs(compose, experiment, n_datasets):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench.config.choices import known_options

    compose()  # registers the schema
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert [int(s) for s in params.seed.split(",")] == [42, 123, 456, 789, 101112]
    datasets = params.dataset.split(",")
    assert len(datasets) == n_datasets and set(datasets) <= set(known_options(CONF_DIR, "dataset"))
    assert set(params.method.split(",")) <= set(known_options(CONF_DIR, "method"))
    assert cfg.hardware.name == "gpu"


@pytest.mark.parametrize(
    ("hardware", "launcher"),
    [
        ("cpu", "BasicLauncher"),
        ("local", "LocalLauncher"),
        ("slurm_a100", "SlurmLauncher"),
        ("slurm_h100", "SlurmLauncher"),
    ],
)
def test_hardware_picks_the_launcher(hardware, launcher):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=[f"hardware={hardware}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(launcher)
    assert cfg.hardware.name == hardware
    if launcher == "SlurmLauncher":
        assert cfg.hydra.launcher.gpus_per_node == (0 if hardware == "slurm_cpu" else 1)
        assert cfg.hydra.launcher.timeout_min > 0 and cfg.hydra.launcher.max_num_timeout > 0
        assert "export HF_HUB_OFFLINE=1" in cfg.hydra.launcher.setup
