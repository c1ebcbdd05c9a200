"""The ``plugin`` provider: a method folder (:mod:`bench.plugins`: ``method.plugins_dir``, ``$PEFT_DIR``,
``plugins/``), registered with peft and run through the ``peft`` provider. ``method=<folder>`` needs no
YAML in ``conf/`` (:mod:`bench.config.plugin_search`)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from bench.errors import ConfigError
from bench.methods.base import PROVIDERS, Provider
from bench.methods.peft_provider import apply_peft, load_peft, save_peft, validate_peft


def plugin_name(method: DictConfig) -> str:
    """The plugin folder: the method name."""
    return str(method.name)


def _registered(method: DictConfig) -> DictConfig:
    """Discover and register the plugins; return ``method`` with the plugin's peft type."""
    from omegaconf import OmegaConf

    from bench.plugins import get_plugin

    plugin = get_plugin(plugin_name(method), method.plugins_dir)
    if method.peft_type is not None and str(method.peft_type).upper() != plugin.peft_type:
        raise ConfigError(
            f"method {method.name!r}: method.peft_type={method.peft_type!r} but plugin {plugin.name!r} "
            f"({plugin.folder}) registers peft type {plugin.peft_type}."
        )
    resolved = OmegaConf.to_container(method, resolve=True)
    resolved["peft_type"] = plugin.peft_type
    return OmegaConf.create(resolved)


def _validate(method: DictConfig) -> None:
    validate_peft(_registered(method))


def _apply(model, method: DictConfig):
    return apply_peft(model, _registered(method))


def _save(model, method: DictConfig, folder: Path) -> None:
    save_peft(model, method, folder)


def _load(base_model, method: DictConfig, folder: Path):
    _registered(method)  # PeftModel.from_pretrained needs the type registered in this process
    return load_peft(base_model, method, folder)


PROVIDERS.register("plugin", Provider(apply=_apply, validate=_validate, save=_save, load=_load))
