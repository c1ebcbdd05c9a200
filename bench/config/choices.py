"""Check ``group=option`` command-line choices against the files in ``conf/`` before Hydra composes.

Hydra lists the available options for a top-level group, but for nested ones (``dataset=glue/sst3``)
it only says the file is missing; this gives one message for every group, with close matches.

``method`` also lists the plugin folders (``$PEFT_DIR``, ``plugins/``, and ``method.plugins_dir`` given on
the command line: :func:`add_plugins_dir_argument`).

Also the method shorthand ``method=peft:<TYPE>`` (any HF peft tuner by its peft type, from
``conf/method/peft.yaml``), rewritten before Hydra parses the command line.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.registry import unknown_name_message

GROUPS = ("model", "method", "dataset", "metric", "hardware", "logger", "experiment", "search")
_CHOICE = re.compile(rf"^(?:\+|\+\+)?({'|'.join(GROUPS)})=(.+)$")
_PLUGINS_DIR = re.compile(r"^(?:\+|\+\+)?method\.plugins_dir=(.+)$")
_SWEEP_FN = re.compile(r"^\w+\(")  # choice(...), range(...): left to Hydra
_SHORTHAND = re.compile(r"^(?:\+|\+\+)?method=peft:(.*)$")
# peft types whose method family is soft_prompt (evaluation batches them differently).
_PLUGIN_HINT = (
    " (methods: conf/method/*.yaml and the plugin folders in $PEFT_DIR and plugins/; "
    "a folder with config.py and model.py is a method by its name)"
)
_SOFT_PROMPT_TYPES = {"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "MULTITASK_PROMPT_TUNING", "CPT"}


class ShorthandError(ValueError):
    """A ``method=peft:<TYPE>`` argument that cannot be rewritten."""


def expand_method_shorthand(args: list[str]) -> list[str]:
    """Rewrite ``method=peft:VERA`` to ``method=peft method.peft_type=VERA method.name=peft:VERA``.

    Prompt-learning types also get ``method.family=soft_prompt``. Other arguments pass unchanged, in order.
    """
    out = []
    for arg in args:
        match = _SHORTHAND.match(arg)
        if not match:
            out.append(arg)
            continue
        value = match.group(1).strip()
        if "," in value or not value or _SWEEP_FN.match(value):
            raise ShorthandError(
                f"{arg!r}: give one peft:<TYPE> per run; to sweep, use method=peft method.peft_type=A,B."
            )
        peft_type = value.upper()
        out += ["method=peft", f"method.peft_type={peft_type}", f"method.name='peft:{peft_type}'"]
        if peft_type in _SOFT_PROMPT_TYPES:
            out.append("method.family=soft_prompt")
    return out


def known_options(conf_dir: Path, group: str) -> list[str]:
    """The options of ``group``: its YAMLs under ``conf_dir``; for ``method`` also the plugin folders
    (``$PEFT_DIR``, ``plugins/``; :mod:`bench.config.plugin_search` makes each one a choice)."""
    root = conf_dir / group
    found = {p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml")}
    if group == "method":
        from bench.plugins import available

        found |= set(available(strict=False))
    return sorted(found)


def unknown_choices(args: list[str], conf_dir: Path) -> list[str]:
    """Messages for each ``group=option`` in ``args`` (comma lists included) with no config file."""
    messages = []
    for arg in args:
        match = _CHOICE.match(arg)
        if not match or _SWEEP_FN.match(match.group(2)):
            continue
        group, value = match.groups()
        known = known_options(conf_dir, group)
        for option in value.split(","):
            option = option.strip()
            if group == "method" and option.startswith("peft:"):
                continue  # the shorthand: its peft type is checked when the method validates
            if option and option not in known:
                message = unknown_name_message(group, option, known)
                if group == "method":
                    message += _PLUGIN_HINT
                messages.append(message)
    return messages


def add_plugins_dir_argument(args: list[str]) -> str | None:
    """``method.plugins_dir=DIR`` on the command line: put DIR first in ``$PEFT_DIR`` for this process.

    Hydra picks ``method=<folder>`` before it reads ``method.plugins_dir``, so the folder's option is
    listed through ``$PEFT_DIR`` (inherited by sweep jobs, e.g. on SLURM). Returns DIR, or None.
    """
    import os

    found = [m.group(1).strip().strip("'\"") for m in map(_PLUGINS_DIR.match, args) if m]
    if not found:
        return None
    folder = found[-1]
    rest = os.environ.get("PEFT_DIR")
    os.environ["PEFT_DIR"] = os.pathsep.join([folder, rest] if rest else [folder])
    return folder


def checked_overrides(args: list[str], prog: str) -> list[str] | None:
    """``args`` with the method shorthand expanded and every ``group=option`` checked against ``conf/``;
    None after printing the problems (one per line, prefixed by ``prog``) on stderr. For the command-line
    front ends that compose configs themselves (``bench.plan``, ``bench.search``)."""
    import sys

    from bench import CONF_DIR

    try:
        args = expand_method_shorthand(args)
    except ShorthandError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return None
    problems = unknown_choices(args, CONF_DIR)
    if problems:
        print(f"{prog}: " + ("\n" + " " * (len(prog) + 2)).join(problems), file=sys.stderr)
        return None
    return args
