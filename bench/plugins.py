"""Custom PEFT methods as plugin folders, registered with HF peft so they behave like built-in tuners.

A plugin is one folder (its name is the method name) holding (the interface of PEFT-Factory's custom
methods):

- ``config.py``: a ``peft.PeftConfig`` subclass whose ``__post_init__`` sets ``peft_type`` (a
  ``PeftType.<NAME>`` member; the loader adds the members ``config.py`` names before importing it);
- ``model.py``: a ``peft.tuners.tuners_utils.BaseTuner`` subclass with a ``prefix`` (e.g. ``"bitfit_"``)
  that starts the names of the method's parameters;
- optionally ``method.yaml``: the method's peftbench defaults (``family``, ``learning_rate``,
  ``options``...), read by :mod:`bench.config.plugin_search`, which makes ``method=<folder>`` a choice.

Folders are looked for in ``method.plugins_dir``, then each folder of ``$PEFT_DIR`` (several may be
given, separated by ``os.pathsep``), then the project's ``plugins/``; all of them count, and where two
hold the same name the earlier one is used (logged). Other files in the folder (e.g. ``layer.py``) are
importable from these as ``from .layer import X``. Registration goes through
``peft.utils.register_peft_method``, so ``get_peft_model``, ``save_pretrained`` and
``PeftModel.from_pretrained`` work. Tuners written for peft <= 0.17 (PEFT-Factory's own folders) are
adapted when they load (:func:`adapt_older_tuner`). A broken folder is a :class:`PluginError` naming the
folder and what is wrong, never a silent skip.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import inspect
import logging
import os
import re
import sys
import traceback
import types
from pathlib import Path

from bench.errors import ConfigError

log = logging.getLogger(__name__)

PLUGIN_FILES = ("config.py", "model.py")
_PACKAGE = "peftbench_plugins"  # plugins import as peftbench_plugins.<folder>.<module>
PEFT_TYPE_NAME = re.compile(r"PeftType\.([A-Z][A-Z0-9_]*)")


class PluginError(ConfigError):
    """A plugin folder that cannot be used; the message names the folder and the problem."""


@dataclasses.dataclass(frozen=True)
class Plugin:
    name: str  # the folder name = the method name
    folder: Path
    config_cls: type
    model_cls: type
    peft_type: str  # PeftType member name, e.g. BITFIT
    prefix: str


_LOADED: dict[Path, Plugin] = {}  # resolved folder -> plugin, so each folder imports once per process


def plugin_roots(configured: str | os.PathLike | None = None) -> list[Path]:
    """Where plugin folders are looked for, earliest first: ``method.plugins_dir``, each folder of
    ``$PEFT_DIR`` (``os.pathsep``-separated), the project's ``plugins/``."""
    from bench import PROJECT_DIR

    chosen = [configured] if configured else []
    chosen += [entry for entry in os.environ.get("PEFT_DIR", "").split(os.pathsep) if entry]
    roots: list[Path] = []
    for entry in [*chosen, PROJECT_DIR / "plugins"]:
        root = Path(entry).expanduser()
        if root.resolve() not in {r.resolve() for r in roots}:
            roots.append(root)
    return roots


def plugin_folders(root: Path) -> list[Path]:
    """Every plugin folder under ``root`` (hidden, ``_``-prefixed and ``__pycache__`` folders excluded)."""
    if not root.is_dir():
        raise PluginError(f"plugins folder {root} does not exist (set method.plugins_dir or PEFT_DIR).")
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


_SHADOWED_LOGGED: set[tuple[Path, Path]] = set()


def available(configured: str | os.PathLike | None = None, *, strict: bool = True) -> dict[str, Path]:
    """Name -> folder for every plugin folder in :func:`plugin_roots`, without importing anything.

    A name found in two roots is the earlier root's (``$PEFT_DIR`` before the shipped ``plugins/``), with
    a log line once per process. ``strict``: a configured root that does not exist is an error (the
    shipped ``plugins/`` may be absent); otherwise missing roots are skipped (listing choices).
    """
    from bench import PROJECT_DIR

    found: dict[str, Path] = {}
    for root in plugin_roots(configured):
        if not root.is_dir():
            if strict and root != PROJECT_DIR / "plugins":
                plugin_folders(root)  # raises, naming the folder
            continue
        for folder in plugin_folders(root):
            used = found.setdefault(folder.name, folder)
            if used is not folder and (used, folder) not in _SHADOWED_LOGGED:
                _SHADOWED_LOGGED.add((used, folder))
                log.warning(
                    "plugin %r: using %s; %s has the same name and is not used "
                    "(order: method.plugins_dir, $PEFT_DIR, plugins/)",
                    folder.name,
                    used,
                    folder,
                )
    return found


def discover(configured: str | os.PathLike | None = None) -> dict[str, Plugin]:
    """Load, validate and register every plugin of :func:`available`; name -> plugin."""
    return {name: load_plugin(folder) for name, folder in available(configured).items()}


def get_plugin(name: str, configured: str | os.PathLike | None = None) -> Plugin:
    """The plugin called ``name``; every folder is validated, so a broken neighbour is also an error."""
    from bench.registry import unknown_name_message

    found = discover(configured)
    if name not in found:
        where = ", ".join(map(str, plugin_roots(configured)))
        raise PluginError(unknown_name_message(f"plugin (in {where})", name, list(found)))
    return found[name]


def load_plugin(folder: str | os.PathLike) -> Plugin:
    """Import ``folder``'s config.py and model.py, check them and register the method with peft."""
    folder = Path(folder).resolve()
    if folder in _LOADED:
        return _LOADED[folder]
    name = folder.name

    def fail(problem: str) -> PluginError:
        return PluginError(f"plugin {name!r} ({folder}): {problem}")

    if not name.isidentifier() or name != name.lower():
        raise fail("the folder name must be a lower-case Python identifier (it is the method name).")
    missing = [f for f in PLUGIN_FILES if not (folder / f).is_file()]
    if missing:
        raise fail(f"missing {', '.join(missing)} (a plugin needs {' and '.join(PLUGIN_FILES)}).")

    from peft import PeftConfig
    from peft.tuners.tuners_utils import BaseTuner

    for type_name in PEFT_TYPE_NAME.findall((folder / "config.py").read_text()):
        add_peft_type(type_name)
    package = _package_for(folder)
    config_module = _import(package, "config", fail)
    model_module = _import(package, "model", fail)

    config_cls = _defined_subclass(config_module, PeftConfig)
    if config_cls is None:
        raise fail("config.py defines no subclass of peft.PeftConfig.")
    model_cls = _defined_subclass(model_module, BaseTuner)
    if model_cls is None:
        raise fail("model.py defines no subclass of peft.tuners.tuners_utils.BaseTuner.")
    try:
        peft_type = config_cls().peft_type
    except Exception as err:
        raise fail(
            f"{config_cls.__name__}() with default fields failed: {type(err).__name__}: {err}"
        ) from err
    if peft_type is None:
        raise fail(
            f"{config_cls.__name__} sets no peft_type; set it in __post_init__, "
            f"e.g. self.peft_type = PeftType.{name.upper()}."
        )
    prefix = getattr(model_cls, "prefix", None)
    if not isinstance(prefix, str) or not prefix:
        raise fail(f'{model_cls.__name__} has no prefix; set a class attribute, e.g. prefix = "{name}_".')

    adapt_older_tuner(model_cls, _defined_in(package))
    type_name = getattr(peft_type, "name", str(peft_type)).upper()
    _register(type_name, config_cls, model_cls, prefix, fail)
    plugin = Plugin(name, folder, config_cls, model_cls, type_name, prefix)
    _LOADED[folder] = plugin
    return plugin


def add_peft_type(name: str) -> None:
    """Add ``PeftType.<name>`` (value ``name``) to peft's enum, as peft's own types are declared."""
    from peft.utils.peft_types import PeftType

    if name in PeftType.__members__:
        return
    member = str.__new__(PeftType, name)
    member._name_ = name
    member._value_ = name
    member.__objclass__ = PeftType
    PeftType._member_map_[name] = member
    PeftType._value2member_map_[name] = member
    PeftType._member_names_.append(name)
    type.__setattr__(PeftType, name, member)  # EnumType.__setattr__ refuses new members


def _package_for(folder: Path) -> str:
    """A module package for ``folder``, so relative imports between its files work."""
    if _PACKAGE not in sys.modules:
        root = types.ModuleType(_PACKAGE)
        root.__path__ = []
        sys.modules[_PACKAGE] = root
    # Two folders with the same name in different places must not share modules.
    digest = abs(hash(str(folder))) % 10**8
    package = f"{_PACKAGE}.{folder.name}_{digest}"
    if package not in sys.modules:
        module = types.ModuleType(package)
        module.__path__ = [str(folder)]
        module.__file__ = str(folder / "__init__.py")
        sys.modules[package] = module
    return package


def _import(package: str, module: str, fail) -> types.ModuleType:
    qualified = f"{package}.{module}"
    try:
        return importlib.import_module(qualified)
    except Exception as err:
        sys.modules.pop(qualified, None)
        raise fail(f"importing {module}.py failed:\n{traceback.format_exc()}") from err


def _defined_subclass(module: types.ModuleType, base: type) -> type | None:
    """The subclass of ``base`` defined in ``module`` (not merely imported into it)."""
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, base)
        and obj is not base
        and obj.__module__ == module.__name__
    ]
    return found[-1] if found else None


def _defined_in(package: str) -> list[type]:
    """Every class defined in the plugin's modules imported so far (config, model, layer, ...)."""
    return [
        obj
        for name, module in list(sys.modules.items())
        if name.startswith(package + ".") and module is not None
        for obj in vars(module).values()
        if inspect.isclass(obj) and obj.__module__ == module.__name__
    ]


def adapt_older_tuner(model_cls: type, classes: list[type]) -> None:
    """Make a tuner written for peft <= 0.17 (e.g. PEFT-Factory's ``peft/bitfit``) work with peft 0.18.

    peft 0.18 calls ``set_adapter(names, inference_mode=...)`` on tuners and tuner layers and reads the
    class attributes ``tuner_layer_cls`` and ``target_module_mapping``. Older tuners have a one-argument
    ``set_adapter`` and neither attribute. The folder's files are left as they are; its classes get:

    - ``tuner_layer_cls``: the folder's own ``BaseTunerLayer`` subclasses (else any peft tuner layer);
    - ``target_module_mapping``: ``{}`` (older tuners pick default targets in ``_prepare_adapter_config``);
    - ``set_adapter`` (tuner and layers) accepting ``inference_mode``: the old method runs, then, as
      peft 0.18 does, the named adapters are frozen when ``inference_mode`` is true.

    Their own ``__getattr__``, ``_mark_only_adapters_as_trainable``, ``_check_target_module_exists``
    and ``_prepare_adapter_config`` (static or not) already fit peft 0.18's calls and are kept.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = tuple(c for c in classes if issubclass(c, BaseTunerLayer) and c is not BaseTunerLayer)
    if not hasattr(model_cls, "tuner_layer_cls"):
        model_cls.tuner_layer_cls = layers or BaseTunerLayer
    if not hasattr(model_cls, "target_module_mapping"):
        model_cls.target_module_mapping = {}
    if not _takes_inference_mode(model_cls.set_adapter):
        model_cls.set_adapter = _with_inference_mode(model_cls.set_adapter, _freeze_tuner_adapters)
    for layer in layers:
        if not _takes_inference_mode(layer.set_adapter):
            layer.set_adapter = _with_inference_mode(layer.set_adapter, _freeze_layer_adapters)


def _takes_inference_mode(method) -> bool:
    parameters = inspect.signature(method).parameters.values()
    return any(p.name == "inference_mode" or p.kind is p.VAR_KEYWORD for p in parameters)


def _with_inference_mode(legacy, freeze):
    """``legacy(self, names)`` as peft 0.18's ``set_adapter(self, names, inference_mode=False)``."""

    @functools.wraps(legacy)
    def set_adapter(self, adapter_name, inference_mode: bool = False) -> None:
        legacy(self, adapter_name)
        if inference_mode:
            freeze(self, [adapter_name] if isinstance(adapter_name, str) else list(adapter_name))

    del set_adapter.__wrapped__  # inspect.signature must show what peft calls, not the old method
    return set_adapter


def _freeze_tuner_adapters(tuner, names: list[str]) -> None:
    tuner.set_requires_grad(names, requires_grad=False)  # every tuner layer of the model
    tuner.set_auxiliary_adapters(names, inference_mode=True)  # modules_to_save and the like


def _freeze_layer_adapters(layer, names: list[str]) -> None:
    for attribute in layer.adapter_layer_names:
        for name, module in getattr(layer, attribute).items():
            if name in names:
                module.requires_grad_(False)


def _register(type_name: str, config_cls, model_cls, prefix: str, fail) -> None:
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING
    from peft.utils import register_peft_method
    from peft.utils.peft_types import PeftType

    add_peft_type(type_name)
    peft_type = PeftType[type_name]
    registered = PEFT_TYPE_TO_CONFIG_MAPPING.get(peft_type)
    if registered is not None:
        if (registered, PEFT_TYPE_TO_TUNER_MAPPING.get(peft_type)) == (config_cls, model_cls):
            return
        where = inspect.getsourcefile(registered) or registered.__module__
        raise fail(f"peft type {type_name} is already registered (by {where}); pick another peft_type.")
    try:
        register_peft_method(
            name=type_name.lower(), config_cls=config_cls, model_cls=model_cls, prefix=prefix
        )
    except (KeyError, ValueError) as err:
        raise fail(f"peft refused the registration: {err}") from err
