"""Plugin folders as PEFT-Factory users use them: ``method=<folder>`` with no other file, ``PEFT_DIR`` added
to the shipped ``plugins/``, an optional ``method.yaml`` of defaults, and folders written for the peft <= 0.17
tuner API (tests/fixtures/plugins_peft017) loading, training, saving and reloading under our peft.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import CONF_DIR, PROJECT_DIR
from bench.methods import apply_method, count_parameters, load_method, save_method
from bench.models import load_model_and_tokenizer
from bench.plugins import PluginError, available, get_plugin
from bench.run import run_experiment
from tests.conftest import TINY

FIXTURES = Path(__file__).parents[2] / "fixtures" / "plugins_peft017"
RUN = ("trainer.max_steps=2", "trainer.eval_every=1.0")
# tiny-random: hidden 64, 2 layers, 4 query heads and 2 key/value heads of 16 (v_proj: 32 outputs),
# intermediate 128. legacy_bias: one offset per output of q_proj and v_proj (its own default targets for
# "llama"); legacy_scale: one scale per output of up_proj and down_proj (its method.yaml).
EXPECTED = {
    "legacy_bias": {"trainable": 2 * (64 + 32), "learning_rate": 1e-4},  # 192; MethodConfig's default rate
    "legacy_scale": {"trainable": 2 * (128 + 64), "learning_rate": 3e-3},  # 384; method.yaml's rate
}


@pytest.fixture(scope="session")
def peft_dir_copy(tmp_path_factory) -> Path:
    """The fixture folders copied once into a tmp PEFT_DIR (a peft type registers once per process)."""
    root = tmp_path_factory.mktemp("peft_dir")
    for name in EXPECTED:
        shutil.copytree(FIXTURES / name, root / name)
    return root


@pytest.fixture
def peft_dir(peft_dir_copy, monkeypatch) -> Path:
    monkeypatch.setenv("PEFT_DIR", str(peft_dir_copy))
    return peft_dir_copy


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_peft017_folder_runs_as_method_by_its_name(compose, peft_dir, tmp_path, name):
    cfg = compose(*TINY, f"method={name}", *RUN)
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "success", record.get("traceback")
    assert (record["method"], record["method_family"], record["peft_type"]) == (
        name,
        "reparametrized",
        name.upper(),
    )
    assert record["trainable_params"] == EXPECTED[name]["trainable"]
    assert record["learning_rate"] == pytest.approx(EXPECTED[name]["learning_rate"])
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["peft_type"] == name.upper()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_peft017_folder_trains_saves_and_reloads(compose, cache_dir, peft_dir, tmp_path, name):
    cfg = compose("model=tiny-random", f"method={name}")
    model = apply_method(load_model_and_tokenizer(cfg.model, cache_dir)[0], cfg.method)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert count_parameters(model)[0] == EXPECTED[name]["trainable"]
    assert trainable and all(f"{name}_" in n for n, _ in trainable)  # the folder's own marking
    ids = torch.arange(3, 19).reshape(2, 8)
    optimizer = torch.optim.AdamW([p for _, p in trainable], lr=0.1)
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    assert all(p.abs().sum() > 0 for _, p in trainable)  # trained away from the zero start
    model.eval()
    save_method(model, cfg.method, tmp_path)
    reloaded = load_method(load_model_and_tokenizer(cfg.model, cache_dir)[0], cfg.method, tmp_path)
    reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=0, rtol=0
        )
    # peft 0.18 reloads for inference with set_adapter(..., inference_mode=True): the adapter is frozen
    assert count_parameters(reloaded)[0] == 0


def test_older_tuner_api_is_adapted_without_editing_the_folder(peft_dir):
    import inspect

    plugin = get_plugin("legacy_bias")
    source = (plugin.folder / "model.py").read_text()
    assert "def set_adapter(self, adapter_name: str) -> None:" in source and "tuner_layer_cls" not in source
    assert "inference_mode" in inspect.signature(plugin.model_cls.set_adapter).parameters
    assert [c.__name__ for c in plugin.model_cls.tuner_layer_cls] == ["LegacyBiasLayer"]


def test_peft_dir_adds_to_the_shipped_plugins(compose, peft_dir):
    found = available()
    assert {"bitfit", "svft", "legacy_bias", "legacy_scale"} <= set(found)
    assert found["bitfit"] == PROJECT_DIR / "plugins" / "bitfit"
    assert get_plugin("svft").folder == (PROJECT_DIR / "plugins" / "svft").resolve()
    bitfit = compose("model=tiny-random", "method=bitfit").method
    assert (bitfit.peft_type, bitfit.family, bitfit.learning_rate) == ("BITFIT", "selective", 1e-2)


def test_a_name_in_peft_dir_and_plugins_is_peft_dirs_with_a_log_line(monkeypatch, tmp_path, caplog):
    (tmp_path / "svft").mkdir()  # listed, not imported: the shipped svft stays the registered one
    monkeypatch.setenv("PEFT_DIR", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="bench.plugins"):
        assert available()["svft"] == tmp_path / "svft"
    assert f"plugin 'svft': using {tmp_path / 'svft'}; {PROJECT_DIR / 'plugins' / 'svft'}" in caplog.text


def test_conf_method_yaml_wins_over_a_folder_of_the_same_name(compose, monkeypatch, tmp_path):
    (tmp_path / "bitfit").mkdir()
    (tmp_path / "bitfit" / "method.yaml").write_text("learning_rate: 0.5\n")
    monkeypatch.setenv("PEFT_DIR", str(tmp_path))
    assert compose("model=tiny-random", "method=bitfit").method.learning_rate == 1e-2


def test_a_folder_without_method_yaml_gets_the_plugin_defaults(compose, peft_dir):
    method = compose("model=tiny-random", "method=legacy_bias").method
    assert (method.name, method.provider, method.family, method.learning_rate) == (
        "legacy_bias",
        "plugin",
        "reparametrized",
        1e-4,
    )
    scale = compose("model=tiny-random", "method=legacy_scale").method
    assert list(scale.options.target_modules) == ["up_proj", "down_proj"]  # ${model.modules.*} resolved


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("learning_rat: 0.1\n", "Key 'learning_rat' not in 'MethodConfig'"),
        ("learning_rate: fast\n", "Value 'fast' of type 'str' could not be converted to Float"),
        ("name: other\n", "name is 'other', but the method name is the folder name, 'myplug'"),
        ("provider: peft\n", "provider must be 'plugin'"),
        ("- a list\n", "must be a mapping of MethodConfig fields"),
    ],
    ids=["typo", "type", "name", "provider", "not-a-mapping"],
)
def test_a_bad_method_yaml_names_the_file(tmp_path, text, expected):
    from bench.config.plugin_search import method_config

    (tmp_path / "myplug").mkdir()
    (tmp_path / "myplug" / "method.yaml").write_text(text)
    with pytest.raises(PluginError) as err:
        method_config("myplug", tmp_path / "myplug")
    assert f"plugin 'myplug': {tmp_path / 'myplug' / 'method.yaml'}: " in str(err.value)
    assert expected in str(err.value)


def test_a_typo_gets_did_you_mean_naming_the_plugin_folders(compose, peft_dir):
    from hydra.errors import MissingConfigException

    from bench.config.choices import unknown_choices

    (message,) = unknown_choices(["method=lora,legacy_scal"], CONF_DIR)
    assert "Unknown method 'legacy_scal'. Did you mean 'legacy_scale'" in message
    assert "legacy_bias" in message and "plugin folders in $PEFT_DIR and plugins/" in message
    assert unknown_choices(["method=lora,legacy_scale,bitfit"], CONF_DIR) == []
    with pytest.raises(MissingConfigException, match="legacy_scale"):  # Hydra lists them as options too
        compose("method=legacy_scal")


def test_method_plugins_dir_on_the_command_line_goes_first_in_peft_dir(monkeypatch, tmp_path):
    from bench.config.choices import add_plugins_dir_argument

    monkeypatch.setenv("PEFT_DIR", "/elsewhere")
    assert add_plugins_dir_argument(["method=myplug", "method.plugins_dir=/mine"]) == "/mine"
    assert os.environ["PEFT_DIR"] == f"/mine{os.pathsep}/elsewhere"
    monkeypatch.delenv("PEFT_DIR")
    assert add_plugins_dir_argument(["method=lora"]) is None and "PEFT_DIR" not in os.environ
    add_plugins_dir_argument([f"+method.plugins_dir='{tmp_path}'"])
    assert os.environ["PEFT_DIR"] == str(tmp_path)


def test_cli_multirun_over_a_builtin_and_a_plugin_folder(cache_dir, peft_dir, tmp_path):
    """``python -m bench --multirun method=lora,<folder>``, the folder only in $PEFT_DIR."""
    overrides = [*TINY, *RUN]
    env = {**os.environ, "PEFTBENCH_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--multirun", "method=lora,legacy_bias", *overrides]
        + [f"paths.results_dir={tmp_path}", "hydra.job_logging.root.level=WARNING"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = {r["method"]: r for r in (json.loads(p.read_text()) for p in tmp_path.glob("*/result.json"))}
    assert {m: r["status"] for m, r in records.items()} == {"lora": "success", "legacy_bias": "success"}
    assert records["legacy_bias"]["trainable_params"] == EXPECTED["legacy_bias"]["trainable"]


def test_cli_cfg_job_shows_a_folder_method_with_its_yaml(peft_dir):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "model=tiny-random", "method=legacy_scale", "--cfg", "job"],
        cwd=PROJECT_DIR,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    method = done.stdout.split("\nmethod:\n", 1)[1]
    assert "  name: legacy_scale\n  provider: plugin\n  peft_type: LEGACY_SCALE\n" in method
    assert "  learning_rate: 0.003\n" in method
