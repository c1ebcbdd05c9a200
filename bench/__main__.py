"""``python -m bench`` (and the ``bench`` console script): one Hydra app, one run per job."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from bench import CONF_DIR
from bench.config.run_key import register_resolver
from bench.config.schema import register_configs

log = logging.getLogger("bench")


def _job(cfg) -> dict:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from bench.lock import run_lock
    from bench.run import run_experiment

    hydra_cfg = HydraConfig.get()
    run_dir = hydra_cfg.runtime.output_dir
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    done = _finished(
        cfg, run_dir, hydra_cfg, multirun
    )  # no lock taken: a finished run's files stay as they are
    if done is not None:
        return done
    with run_lock(run_dir):  # one process per run folder; a second launch waits, naming the holder
        done = _finished(cfg, run_dir, hydra_cfg, multirun)  # the holder we waited for finished it
        if done is not None:
            return done
        _save_hydra_files(cfg, run_dir)
        if multirun:  # a job killed from outside reports nothing more: the summary calls it killed
            from bench.sweep import STARTED, record_outcome

            record_outcome(hydra_cfg.sweep.dir, STARTED, {"run_key": Path(run_dir).name}, run_dir)
        record = run_experiment(cfg, run_dir)
    return _report(record, hydra_cfg, multirun)


def _finished(cfg, run_dir, hydra_cfg, multirun: bool) -> dict | None:
    """The record of this run if it already succeeded (then skipped and counted as such), else None."""
    from bench.sweep import finished, record_outcome

    done = None if cfg.rerun else finished(run_dir)
    if done is not None:
        log.info("%s: already succeeded, skipped (rerun=true runs it again)", done["run_key"])
        if multirun:
            record_outcome(hydra_cfg.sweep.dir, "skipped", done, run_dir)
    return done


def _save_hydra_files(cfg, run_dir) -> None:
    """``.hydra/{config,hydra,overrides}.yaml`` as Hydra writes them, but only once the run is ours to do.

    ``hydra.output_subdir`` is null (conf/config.yaml), so Hydra does not write them before the job
    starts: a relaunch that skips a finished run leaves that run's record of its config untouched.
    """
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from bench.atomic import atomic_file

    hydra_node = HydraConfig.instance().cfg  # {hydra: ...}
    folder = Path(run_dir) / ".hydra"
    for name, data in (
        ("config.yaml", cfg),
        ("hydra.yaml", hydra_node),
        ("overrides.yaml", hydra_node.hydra.overrides.task),
    ):
        with atomic_file(folder / name) as tmp:
            OmegaConf.save(data, tmp)


def _report(record: dict, hydra_cfg, multirun: bool) -> dict:
    from hydra.types import RunMode

    from bench.sweep import record_outcome, show_value

    run_dir = hydra_cfg.runtime.output_dir
    status = record["status"]
    if multirun:
        record_outcome(hydra_cfg.sweep.dir, status, record, run_dir)
    if status == "success":
        log.info(
            "%s: %s = %s -> %s",
            record["run_key"],
            record["headline_metric"],
            show_value(record["headline_value"]),  # 4 significant digits, not float repr's 16
            hydra_cfg.runtime.output_dir,
        )
    elif hydra_cfg.mode == RunMode.RUN:
        print(
            f"bench: run failed: {record['error']}\n(details: {hydra_cfg.runtime.output_dir}/result.json)",
            file=sys.stderr,
        )
        sys.exit(1)
    return record


def main() -> None:
    import hydra

    from bench.config.choices import (
        ShorthandError,
        add_plugins_dir_argument,
        expand_method_shorthand,
        unknown_choices,
    )

    searches = [
        a for a in sys.argv[1:] if a.lstrip("+").startswith(("search=", "search.")) and a != "search=null"
    ]
    if searches:  # the stages of a search are multiruns that bench.search launches
        hint = f"bench: {searches[0]}: searches run with `python -m bench.search {searches[0]} ...`"
        print(hint, file=sys.stderr)
        sys.exit(2)
    try:
        sys.argv[1:] = expand_method_shorthand(sys.argv[1:])  # method=peft:VERA -> method=peft ...
    except ShorthandError as err:
        print(f"bench: {err}", file=sys.stderr)
        sys.exit(2)
    add_plugins_dir_argument(sys.argv[1:])  # method=<folder> may name a folder in method.plugins_dir
    problems = unknown_choices(sys.argv[1:], CONF_DIR)
    if problems:
        print("bench: " + "\n       ".join(problems), file=sys.stderr)
        sys.exit(2)
    register_configs()
    register_resolver()
    from bench import sweep

    try:
        hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_job)()
    finally:  # a launcher that raised (a job killed from outside) skips Hydra's end callback
        sweep.finish_open_summary()
    if sweep.failed_jobs:  # after the summary: a scheduler or CI sees that the sweep is not complete
        sys.exit(1)


if __name__ == "__main__":
    main()
