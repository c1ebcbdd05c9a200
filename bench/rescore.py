"""Re-score saved predictions with today's code, in both conventions, without running anything again.

    python -m bench.rescore RUN_DIR [RUN_DIR ...]        # rewrite each run's result.json in place
    python -m bench.rescore --predictions F --dataset D  # print {"metrics": ..., "metrics_paper": ...}

In place, ``result.json`` is rewritten atomically: ``metrics``, ``metrics_paper``, the headline and PSCP
are recomputed from ``predictions.jsonl`` with the run's own config (a run with ``test_evaluated: false``
has none: its test fields stay empty), and the ``validation`` block's metrics and headline from
``predictions_validation.jsonl`` where the run has one; the previous values are kept under
``metrics_before_rescore`` (with the date and the code commit), every training field is left as it was.
A predictions file needs per row ``generated`` (or, from score mode, ``parsed``) and ``reference``
(or ``references``, a list of golds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.evaluation.scoring import Scores, score_answers
from bench.record import conform
from bench.results import _nan_to_none, git_commit, write_json_atomic

RESULT_FILE = "result.json"
PREDICTIONS_FILE = "predictions.jsonl"
VALIDATION_PREDICTIONS_FILE = "predictions_validation.jsonl"
RESCORED_KEYS = ("metrics", "metrics_paper", "paper_headline_metric", "convention", "headline_metric",
                 "headline_value", "pscp")  # fmt: skip


def read_predictions(path: str | Path) -> tuple[list[str | None], list[Any]]:
    """(answers, references) from a JSONL file; a row without an answer or a reference is an error."""
    answers, references = [], []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        answer = row.get("generated") if row.get("generated") is not None else row.get("parsed")
        reference = row.get("references", row.get("reference"))
        if reference is None or ("generated" not in row and "parsed" not in row):
            raise ValueError(f"{path}:{n}: each row needs 'generated' and 'reference' (or 'references')")
        answers.append(answer)
        references.append(reference)
    return answers, references


def score_file(path: str | Path, ds) -> Scores:
    answers, references = read_predictions(path)
    return score_answers(ds, answers, references)


def dataset_config(name: str) -> DictConfig:
    """The composed config for ``dataset=name`` (as ``python -m bench dataset=name`` builds it)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench import PROJECT_DIR
    from bench.config.run_key import register_resolver
    from bench.config.schema import register_configs

    register_configs()
    register_resolver()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(PROJECT_DIR) / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"dataset={name}"])


def rescore_run(run_dir: str | Path) -> dict[str, Any]:
    """Recompute both conventions of one finished run from its predictions; returns the new record."""
    from bench.data.prompts import apply_prompt_style
    from bench.run import VALIDATION_METRIC_KEYS, metrics_record, pscp_record

    run_dir = Path(run_dir)
    record = json.loads((run_dir / RESULT_FILE).read_text())
    test = record.get("test_evaluated", True)  # records from before eval.test always predicted test
    validation = record.get("validation") is not None
    for wanted, name in ((test, PREDICTIONS_FILE), (validation, VALIDATION_PREDICTIONS_FILE)):
        if wanted and not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir / name} not found: only a finished run can be re-scored")
    cfg = OmegaConf.create(record["config"])
    if "convention" not in cfg.metric:  # a run from before the conventions: peftbench's
        cfg.metric.convention = "peftbench"
    # the recorded config is the composed one; a paper-prompt run answered in the paper's label words
    apply_prompt_style(cfg.dataset)
    before = {key: record[key] for key in RESCORED_KEYS if key in record}
    new: dict[str, Any] = {}
    if test:
        scores = score_file(run_dir / PREDICTIONS_FILE, cfg.dataset)
        new = metrics_record(scores.metrics, scores.metrics_paper, scores.paper_headline, cfg)
        if "trainable_params" in record:
            new["pscp"] = pscp_record(
                new["headline_value"],
                record["trainable_params"],
                record.get("flops_delta", 0),
                record.get("peak_memory_bytes", 0),
                cfg.metric.pscp,
            )
    if validation:
        before["validation"] = {key: record["validation"].get(key) for key in VALIDATION_METRIC_KEYS}
        scores = score_file(run_dir / VALIDATION_PREDICTIONS_FILE, cfg.dataset)
        metrics = metrics_record(scores.metrics, scores.metrics_paper, scores.paper_headline, cfg)
        new["validation"] = {**record["validation"], **{key: metrics[key] for key in VALIDATION_METRIC_KEYS}}
    history = record.get("metrics_before_rescore", [])
    record.update(new)
    record["metrics_before_rescore"] = [
        *history,
        {"rescored_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rescored_by_commit": git_commit(), **before},
    ]
    write_json_atomic(run_dir / RESULT_FILE, conform(record))  # bench.record.RunRecord's keys only
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rescore", description=__doc__.split("\n")[0])
    parser.add_argument("run_dirs", nargs="*", help="run folders holding result.json and predictions.jsonl")
    parser.add_argument("--predictions", help="a JSONL file with generated + reference per row")
    parser.add_argument("--dataset", help="the dataset config name for --predictions, e.g. glue/sst2")
    args = parser.parse_args(argv)
    if args.predictions:
        if not args.dataset or args.run_dirs:
            parser.error("--predictions needs --dataset NAME and no run folders")
        scores = score_file(args.predictions, dataset_config(args.dataset).dataset)
        print(
            json.dumps(
                _nan_to_none({"metrics": scores.metrics, "metrics_paper": scores.metrics_paper}), indent=2
            )
        )
        return 0
    if not args.run_dirs:
        parser.error("give run folders, or --predictions FILE --dataset NAME")
    for run_dir in args.run_dirs:
        record = rescore_run(run_dir)
        line = f"{run_dir}: {record['headline_metric']} = {record['headline_value']} ({record['convention']})"
        if record.get("validation"):
            line += f"; validation {record['validation']['headline_value']}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
