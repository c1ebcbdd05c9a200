"""``python -m bench`` (and the ``bench`` console script): one Hydra app, one run per job."""

from __future__ import annotations

import logging
import sys

from bench import CONF_DIR
from bench.config.run_key import register_resolver
from bench.config.schema import register_configs

log = logging.getLogger("bench")


def _job(cfg) -> dict:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from bench.run import run_experiment
    from bench.sweep import finished, record_outcome

    hydra_cfg = HydraConfig.get()
    run_dir = hydra_cfg.runtime.output_dir
    done = None if cfg.rerun else finished(run_dir)
    if done is not None:  # the same config already succeeded here: nothing to redo
        log.info("%s: already succeeded, skipped (rerun=true runs it again)", done["run_key"])
        if hydra_cfg.mode == RunMode.MULTIRUN:
            record_outcome(hydra_cfg.sweep.dir, "skipped", done, run_dir)
        return done
    record = run_experiment(cfg, run_dir)
    status = record["status"]
    if hydra_cfg.mode == RunMode.MULTIRUN:
        record_outcome(hydra_cfg.sweep.dir, status, record, run_dir)
    if status == "success":
        log.info(
            "%s: %s = %s -> %s",
            record["run_key"],
            record["headline_metric"],
            record["headline_value"],
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
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_job)()


if __name__ == "__main__":
    main()
