"""Plugin folders: discovery, registration with peft, and an error naming the folder for each breakage."""

from __future__ import annotations

import os
import textwrap

import pytest

from bench.plugins import PluginError, discover, load_plugin, plugin_roots

CONFIG = """
from dataclasses import dataclass, field

from peft import PeftConfig
from peft.utils import PeftType


@dataclass
class {cls}Config(PeftConfig):
    target_modules: list[str] | str | None = field(default=None)

    def __post_init__(self):
        super().__post_init__()
        {peft_type_line}
"""
MODEL = """
from peft.tuners.tuners_utils import BaseTuner


class {cls}Model(BaseTuner):
    {prefix_line}

    def _create_and_replace(self, *args, **kwargs):
        raise NotImplementedError
"""


def _write(root, name, *, config=True, model=True, peft_type=True, prefix=True, model_text=None):
    folder = root / name
    folder.mkdir(parents=True)
    cls = name.capitalize()
    if config:
        line = f"self.peft_type = PeftType.{name.upper()}" if peft_type else "pass"
        (folder / "config.py").write_text(CONFIG.format(cls=cls, peft_type_line=line))
    if model:
        text = model_text or MODEL.format(
            cls=cls, prefix_line=f'prefix: str = "{name}_"' if prefix else "pass"
        )
        (folder / "model.py").write_text(textwrap.dedent(text))
    return folder


def test_a_valid_plugin_registers_with_peft(tmp_path):
    from peft import PeftType
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING

    _write(tmp_path, "okplug")
    plugin = discover(tmp_path)["okplug"]
    assert (plugin.name, plugin.peft_type, plugin.prefix) == ("okplug", "OKPLUG", "okplug_")
    assert PEFT_TYPE_TO_CONFIG_MAPPING[PeftType.OKPLUG] is plugin.config_cls
    assert PEFT_TYPE_TO_PREFIX_MAPPING[PeftType.OKPLUG] == "okplug_"
    assert load_plugin(tmp_path / "okplug") is plugin  # each folder loads once


def test_project_plugins_are_found():
    found = discover()
    assert {"bitfit", "svft"} <= set(found)
    assert found["bitfit"].peft_type == "BITFIT" and found["svft"].prefix == "svft_"


def test_plugin_roots_order(monkeypatch, tmp_path):
    from bench import PROJECT_DIR

    shipped = PROJECT_DIR / "plugins"
    monkeypatch.setenv("PEFT_DIR", f"{tmp_path / 'env1'}{os.pathsep}{tmp_path / 'env2'}")
    assert plugin_roots(tmp_path / "cfg") == [tmp_path / "cfg", tmp_path / "env1", tmp_path / "env2", shipped]
    monkeypatch.setenv("PEFT_DIR", str(shipped))  # the same folder twice counts once
    assert plugin_roots(None) == [shipped]
    monkeypatch.delenv("PEFT_DIR")
    assert plugin_roots(None) == [shipped]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"config": False}, "missing config.py"),
        ({"model": False}, "missing model.py"),
        ({"peft_type": False}, "sets no peft_type"),
        ({"prefix": False}, "has no prefix"),
        ({"model_text": "import nonexistent_module_xyz\n"}, "importing model.py failed:\nTraceback"),
        ({"model_text": "X = 1\n"}, "model.py defines no subclass of peft.tuners.tuners_utils.BaseTuner"),
    ],
    ids=["no-config", "no-model", "no-peft-type", "no-prefix", "import-error", "no-tuner"],
)
def test_broken_plugin_names_folder_and_problem(tmp_path, kwargs, expected):
    name = "broken" + str(abs(hash(expected)) % 10_000)
    folder = _write(tmp_path, name, **kwargs)
    with pytest.raises(PluginError) as err:
        discover(tmp_path)
    message = str(err.value)
    assert f"plugin {name!r} ({folder.resolve()})" in message
    assert expected in message
    if "import" in expected:
        assert "nonexistent_module_xyz" in message  # the traceback names the failing import


def test_config_without_peft_config_subclass(tmp_path):
    folder = tmp_path / "noconf"
    folder.mkdir()
    (folder / "config.py").write_text("X = 1\n")
    (folder / "model.py").write_text(MODEL.format(cls="Noconf", prefix_line='prefix: str = "noconf_"'))
    with pytest.raises(
        PluginError, match=r"plugin 'noconf' .*config.py defines no subclass of peft.PeftConfig"
    ):
        discover(tmp_path)


def test_missing_plugins_folder_and_unknown_plugin(tmp_path):
    from bench.plugins import get_plugin

    with pytest.raises(PluginError, match="does not exist"):
        discover(tmp_path / "nope")
    _write(tmp_path, "bitfot")
    with pytest.raises(PluginError, match=r"Unknown plugin .*'bitfat'. Did you mean 'bitfot'"):
        get_plugin("bitfat", tmp_path)


def test_broken_plugin_fails_method_validation(compose, tmp_path):
    from bench.config.validate import validate

    _write(tmp_path, "bitfit", model=False)
    cfg = compose("model=tiny-random", "method=bitfit", f"method.plugins_dir={tmp_path}")
    with pytest.raises(PluginError, match="plugin 'bitfit' .*missing model.py"):
        validate(cfg)


def test_tuner_written_for_older_peft_gets_the_newer_class_attributes(tmp_path):
    """PEFT-Factory's tuners predate peft 0.18's tuner_layer_cls / target_module_mapping."""
    _write(tmp_path, "oldpeft")
    plugin = discover(tmp_path)["oldpeft"]
    from peft.tuners.tuners_utils import BaseTunerLayer

    assert plugin.model_cls.tuner_layer_cls is BaseTunerLayer and plugin.model_cls.target_module_mapping == {}
