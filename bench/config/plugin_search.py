"""``method=<folder>`` for every plugin folder: a Hydra config source that generates ``method/<folder>``.

Each folder found by :func:`bench.plugins.available` (``$PEFT_DIR`` and the shipped ``plugins/``) is a
config option of the ``method`` group, with no file in ``conf/``::

    name: <folder>
    provider: plugin
    family: reparametrized
    peft_type: <NAME>      # the PeftType.<NAME> that config.py names, if one

merged with the folder's optional ``method.yaml`` (any :class:`~bench.config.schema.MethodConfig` field:
``family``, ``learning_rate``, ``options``...; interpolations such as ``${model.modules.key}`` work).
The source comes after ``conf/`` in Hydra's search path, so ``conf/method/<name>.yaml`` wins over a
folder of the same name (the shipped ``bitfit`` and ``svft`` keep their YAMLs). Because the options are
ordinary Hydra configs, ``--multirun method=lora,<folder>``, ``--cfg job`` and ``--help`` see them.

Nothing is imported here: folders are listed, and only the method's YAML is read; the folder's code is
loaded and checked when the method validates (:mod:`bench.methods.plugin_provider`).
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin

METHOD_YAML = "method.yaml"  # a folder's own peftbench defaults
_GROUP = "method"
_DEFAULTS = {"provider": "plugin", "family": "reparametrized"}


def method_config(name: str, folder: Path):
    """The ``method`` node for plugin folder ``folder``; a bad ``method.yaml`` fails naming the file."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from bench.config.schema import MethodConfig
    from bench.plugins import PluginError

    config = OmegaConf.create({"name": name, **_DEFAULTS, "peft_type": _named_peft_type(folder)})
    own_file = folder / METHOD_YAML
    if not own_file.is_file():
        return config

    def fail(problem: str) -> PluginError:
        return PluginError(f"plugin {name!r}: {own_file}: {problem}")

    try:
        own = OmegaConf.load(own_file)
    except Exception as err:  # yaml's own errors: the message says line and column
        raise fail(f"not readable YAML: {err}") from err
    if own is None:
        return config
    if not isinstance(own, DictConfig):
        raise fail("must be a mapping of MethodConfig fields (family, learning_rate, options, ...).")
    if own.get("name", name) != name:
        raise fail(f"name is {own.name!r}, but the method name is the folder name, {name!r}; drop the key.")
    if own.get("provider", "plugin") != "plugin":
        raise fail(f"provider must be 'plugin' (a plugin folder's code is the method), got {own.provider!r}.")
    config.merge_with(own)
    try:  # the schema's checks now, naming this file (composition would name only the key)
        OmegaConf.merge(OmegaConf.structured(MethodConfig), config)
    except OmegaConfBaseException as err:
        first_line = str(err).splitlines()[0]  # the rest is OmegaConf's key/type dump
        raise fail(f"{first_line} (its keys are MethodConfig's, bench/config/schema.py).") from err
    return config


def _named_peft_type(folder: Path) -> str | None:
    """The ``PeftType.<NAME>`` that ``config.py`` names, when it names one (so ``result.json`` records it;
    the provider checks it against what the folder registers)."""
    from bench.plugins import PEFT_TYPE_NAME

    config_py = folder / "config.py"
    names = set(PEFT_TYPE_NAME.findall(config_py.read_text())) if config_py.is_file() else set()
    return names.pop() if len(names) == 1 else None


class PluginMethodSource(ConfigSource):
    """Hydra config source ``peftbench-plugins://``: ``method/<folder>`` for each plugin folder."""

    @staticmethod
    def scheme() -> str:
        return "peftbench-plugins"

    def _folders(self) -> dict[str, Path]:
        from bench.plugins import available

        return available(strict=False)  # a missing $PEFT_DIR fails later, when a plugin is used

    def _option(self, config_path: str) -> str | None:
        group, _, option = config_path.strip("/").partition("/")
        if group != _GROUP or not option:
            return None
        return option[: -len(".yaml")] if option.endswith(".yaml") else option

    def load_config(self, config_path: str) -> ConfigResult:
        name = self._option(config_path)
        folders = self._folders()
        if name not in folders:
            raise FileNotFoundError(f"no plugin folder for {config_path}")
        return ConfigResult(
            config=method_config(name, folders[name]),
            path=f"{self.scheme()}://{self.path}",
            provider=self.provider,
            header={"package": None},
        )

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        return config_path.strip("/") in ("", _GROUP)

    def is_config(self, config_path: str) -> bool:
        name = self._option(config_path)
        return name is not None and name in self._folders()

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        path = config_path.strip("/")
        if path == "" and results_filter in (None, ObjectType.GROUP):
            return [_GROUP]
        if path == _GROUP and results_filter in (None, ObjectType.CONFIG):
            return sorted(self._folders())
        return []


class PluginMethodSearchPath(SearchPathPlugin):
    """Adds ``peftbench-plugins://`` after peftbench's ``conf/`` (other Hydra apps are left alone)."""

    def manipulate_search_path(self, search_path) -> None:
        from bench import CONF_DIR

        ours = CONF_DIR.resolve()
        for entry in search_path.get_path():
            path = entry.path.removeprefix("file://")  # the compose API passes the bare folder
            if "://" not in path and Path(path).resolve() == ours:
                search_path.append("peftbench-plugins", f"{PluginMethodSource.scheme()}://")
                return


def register_plugin_methods() -> None:
    """Register the source and the search-path plugin with Hydra (idempotent; before composing)."""
    from hydra.core.plugins import Plugins

    Plugins.instance().register(PluginMethodSource)
    Plugins.instance().register(PluginMethodSearchPath)
