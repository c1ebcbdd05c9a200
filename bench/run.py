"""One run: model + tokenizer -> method -> data -> train -> predict on the test split -> metrics -> results.

The run writes ``result.json`` (status ``running`` at start; ``success`` or ``failed`` from a ``finally``
block), ``predictions.jsonl``, the adapter (saved by the method's provider with its library's own saving:
peft's ``save_pretrained``, adapters' ``save_adapter``, the full model for full fine-tuning) and
``log_history.json``.

``eval.validation=true`` also predicts the held-out validation rows (result.json ``validation``, and
``predictions_validation.jsonl``); ``eval.test=false`` skips the test split (``test_evaluated: false``,
empty ``metrics``, ``headline_value`` null, ``n_test`` 0, no ``predictions.jsonl``): a search trial.

Nothing computed is lost: checkpoints stay until ``result.json`` says ``success``, and the trained weights
are saved to ``adapter/`` (its ``.complete`` marker, written last, holds the training record) before the
FLOP probe and prediction, so a relaunch after a kill there evaluates them (``resumed_from: adapter``)
instead of training again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import platform
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.atomic import atomic_dir, unreadable_file
from bench.config.run_key import run_key
from bench.errors import Diverged
from bench.record import conform
from bench.results import git_commit, package_versions, read_result, write_json_atomic, write_jsonl_atomic
from bench.tracking import log_result, tracker

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
PREDICTIONS_FILE = "predictions.jsonl"
VALIDATION_PREDICTIONS_FILE = "predictions_validation.jsonl"
# metrics_record's keys the validation block repeats (its convention is the run's, recorded once)
VALIDATION_METRIC_KEYS = (
    "metrics",
    "metrics_paper",
    "paper_headline_metric",
    "headline_metric",
    "headline_value",
)
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
TRAINED_MARKER = ".complete"  # in adapter/, written last: the training record of the saved weights


def _base_record(cfg: DictConfig) -> dict[str, Any]:
    return {
        "status": "running",
        "error": None,
        "run_key": run_key(cfg),
        "model": cfg.model.name,
        "method": cfg.method.name,
        "method_family": cfg.method.family,
        "peft_type": cfg.method.peft_type,
        "dataset": cfg.dataset.name,
        "seed": cfg.seed,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "host": platform.node(),
    }


def run_experiment(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Run ``cfg`` into ``run_dir`` and return the result record. Failures are recorded, not raised."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = read_result(run_dir / RESULT_FILE)
    if previous and previous.get("status") == "success":  # rerun=true: train again, not from the adapter
        _discard_training(run_dir)
    record = conform(_base_record(cfg))  # every key declared in bench.record.RunRecord
    write_json_atomic(run_dir / RESULT_FILE, record)
    start = time.perf_counter()
    with contextlib.ExitStack() as finish_tracker:  # wandb.finish() whatever happens
        tracked = None
        try:
            tracked = finish_tracker.enter_context(tracker(cfg, run_dir, record["run_key"]))
            record.update(_execute(cfg, run_dir))
            record["status"] = "success"
            conform(record)  # an undeclared key fails the run here, before readers ever see it
        except Exception as err:  # the record must say why; the caller decides the exit code
            record["status"] = "diverged" if isinstance(err, Diverged) else "failed"
            record["error"] = f"{type(err).__name__}: {err}"
            record["traceback"] = traceback.format_exc()
            log.error("run failed: %s", record["error"])
            log.debug("%s", record["traceback"])
        finally:
            record["wall_time_s"] = round(time.perf_counter() - start, 3)
            record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            _write_final(run_dir, record)
            log_result(tracked, record)
    if record["status"] == "success":  # only now: a kill before this point evaluates the adapter again
        shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)
        if not cfg.save_adapter:
            shutil.rmtree(run_dir / ADAPTER_DIR, ignore_errors=True)
    return record


def _write_final(run_dir: Path, record: dict[str, Any]) -> None:
    """Write the final record; if that fails (a full disk), record the failure in a smaller record.

    The small record may fit where the full one did not; if even it cannot be written, the error is
    raised (the file then still says ``running``, and a relaunch evaluates the saved adapter).
    """
    try:
        write_json_atomic(run_dir / RESULT_FILE, record)
        return
    except OSError as err:
        log.error("could not write %s: %s", run_dir / RESULT_FILE, err)
        record.update(status="failed", error=f"writing {RESULT_FILE}: {type(err).__name__}: {err}")
        record["traceback"] = traceback.format_exc()
    small = {k: record.get(k) for k in ("status", "error", "run_key", "model", "method", "dataset", "seed")}
    write_json_atomic(run_dir / RESULT_FILE, {**small, "traceback": record["traceback"]})


def save_trained(model, method, run_dir: Path, trained: dict[str, Any]) -> None:
    """Save the trained weights to ``run_dir/adapter`` with the training record as its completion marker.

    Written into a temporary folder and renamed into place, so ``adapter/`` with its marker is always
    complete; the method's library does the saving (:func:`bench.methods.save_method`).
    """
    from bench.methods import save_method

    folder = run_dir / ADAPTER_DIR
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete one from a killed save, or a finished rerun's
    with atomic_dir(folder, TRAINED_MARKER) as tmp:
        if not save_method(model, method, tmp):
            return  # nothing to save (the method has no weights of its own)
        write_json_atomic(tmp / TRAINED_MARKER, trained)


def read_trained(run_dir: Path) -> dict[str, Any] | None:
    """The training record of a complete saved adapter, or None (train); a broken one is named, not used."""
    marker = Path(run_dir) / ADAPTER_DIR / TRAINED_MARKER
    if not marker.exists():
        return None
    problem = unreadable_file(marker.parent)
    if problem is None:
        try:
            trained = json.loads(marker.read_text())
            if {"trainable_params", "total_params", "train_steps"} <= set(trained):
                return trained
            problem = f"{marker}: incomplete training record"
        except (OSError, ValueError) as err:
            problem = f"{marker}: {err}"
    log.warning("saved adapter unusable (%s): training again; delete %s to silence this", problem, marker)
    return None


def _discard_training(run_dir: Path) -> None:
    (run_dir / ADAPTER_DIR / TRAINED_MARKER).unlink(missing_ok=True)
    shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)


def _execute(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    import torch
    from transformers import set_seed

    from bench.allocator import keep_freed_memory
    from bench.config.validate import resolve_device, validate
    from bench.data.pipeline import prepare_data
    from bench.evaluation.predict import predict
    from bench.measure import PeakMemory, base_forward_flops, forward_flops
    from bench.methods import apply_method, check_requirements, count_parameters, load_kwargs, load_method
    from bench.models import load_model_and_tokenizer
    from bench.results import device_info
    from bench.signals import main_process_handles_preemption
    from bench.training import effective_learning_rate, train

    validate(cfg)
    check_requirements(cfg.method)  # missing packages or GPU: a clear error before any weights load
    device = resolve_device(cfg.hardware.device)
    if cfg.hardware.num_threads:
        torch.set_num_threads(cfg.hardware.num_threads)
    if cfg.hardware.keep_freed_memory:
        keep_freed_memory()  # before the model and the data allocate anything
    _datasets_cache_under(cfg.paths.cache_dir)
    main_process_handles_preemption()  # DataLoader workers must not run submitit's USR2 handler too

    # QLoRA: the base loads quantized (load_kwargs is empty for every other method)
    model, tokenizer = load_model_and_tokenizer(
        cfg.model, cfg.paths.cache_dir, cfg.hardware.precision, **load_kwargs(cfg.method)
    )  # hardware.precision=bf16: bf16 base weights (bench.models.weights_dtype)
    data = prepare_data(cfg, tokenizer)  # data errors surface before the method is applied
    _check_eval_cadence(cfg, data.train)
    _to_device(model, device)
    probe = cfg.metric.pscp.probe_tokens
    # before the method: the reference for extra FLOPs (counted once per architecture, then from disk)
    base_flops = base_forward_flops(model, probe, cfg.paths.cache_dir)
    trained = read_trained(run_dir) if cfg.method.provider != "none" else None
    if trained is not None:  # a relaunch after a kill in evaluation or the result write: training is done
        log.info("evaluating the adapter of a finished training (%s): not training again", ADAPTER_DIR)
        model = load_method(model, cfg.method, run_dir / ADAPTER_DIR)
        trainable, total = trained["trainable_params"], trained["total_params"]
    else:
        set_seed(cfg.seed)  # the method's initialisation depends on the seed only, not on what loaded before
        model = apply_method(model, cfg.method)
        trainable, total = count_parameters(model)
    _to_device(model, device)
    out: dict[str, Any] = {
        "device": device,
        "device_info": device_info(device),  # GPU name, CUDA and driver versions (None on CPU)
        "total_params": total,
        "trainable_params": trainable,
        "n_train": len(data.train) if data.train is not None else 0,
        "n_val": len(data.val) if data.val is not None else 0,
        "n_test": len(data.test_examples) if cfg.eval.test else 0,  # rows predicted
        "dropped_rows": dict(data.dropped_rows),  # rows without a target, per hub split (never fatal)
        "truncated_rows": dict(data.truncated_rows),  # rows cut to trainer.max_seq_length, per split
        "learning_rate": effective_learning_rate(cfg) if trainable else None,
        "train_runtime_s": 0.0,
        "train_samples_per_s": None,
        "peak_memory_bytes": 0,
        "peak_memory_reserved_bytes": None,  # CUDA only: max reserved, and device memory (NVML, the paper's)
        "peak_memory_device_bytes": None,
        # QLoRA's k-bit preparation (peft's prepare_model_for_kbit_training) also turns on gradient
        # checkpointing and upcasts the non-quantized weights to fp32: recorded, so its speed and memory are
        # never compared with another method's unawares
        "gradient_checkpointing": bool(getattr(model, "is_gradient_checkpointing", False)),
        "kbit_training_prep": bool(cfg.method.quantization),
    }

    if cfg.method.provider != "none":
        if trainable == 0:
            raise RuntimeError(f"method {cfg.method.name!r} left no trainable parameters")
        if trained is not None:
            out.update(trained, resumed_from=ADAPTER_DIR)
        else:
            with PeakMemory(device) as peak:
                outcome = train(cfg, model, tokenizer, data.train, data.val, run_dir / CHECKPOINTS_DIR)
            model = outcome.model  # the best checkpoint's weights are the ones saved and evaluated
            write_json_atomic(run_dir / "log_history.json", outcome.log_history)
            trained = {
                "trainable_params": outcome.trainable_params,
                "total_params": total,
                "train_runtime_s": round(outcome.train_runtime_s, 3),
                "train_samples_per_s": round(outcome.train_samples_per_s, 3),
                "train_steps": outcome.steps,
                "best_checkpoint": Path(outcome.best_checkpoint).name if outcome.best_checkpoint else None,
                "best_val_loss": outcome.best_val_loss,
                "peak_memory_bytes": peak.peak_bytes,
                **peak.cuda_record("peak_memory"),
            }
            # Kept until the result is written: a relaunch evaluates it instead of training again.
            save_trained(model, cfg.method, run_dir, trained)
            out.update(trained, resumed_from=outcome.resumed_from)

    tuned_flops = forward_flops(model, probe) if cfg.method.provider != "none" else base_flops
    out.update(base_flops=base_flops, flops_delta=max(0, tuned_flops - base_flops))

    # a relaunch or rerun with other eval settings in this folder leaves no stale predictions behind
    for wanted, name in (
        (cfg.eval.test, PREDICTIONS_FILE),
        (cfg.eval.validation, VALIDATION_PREDICTIONS_FILE),
    ):
        if not wanted:
            (run_dir / name).unlink(missing_ok=True)
    out["validation"] = None
    if cfg.eval.validation:  # the search objective: scored on held-out train rows, never on test
        evaluation = predict(cfg, model, tokenizer, data, split="validation")
        write_jsonl_atomic(run_dir / VALIDATION_PREDICTIONS_FILE, evaluation.rows)
        out["validation"] = validation_record(evaluation, data, cfg)
    out["test_evaluated"] = bool(cfg.eval.test)
    if cfg.eval.test:
        with PeakMemory(device) as peak:
            evaluation = predict(cfg, model, tokenizer, data)
        write_jsonl_atomic(run_dir / PREDICTIONS_FILE, evaluation.rows)
        out.update(
            **metrics_record(evaluation.metrics, evaluation.metrics_paper, evaluation.paper_headline, cfg),
            eval_runtime_s=round(evaluation.runtime_s, 3),
            eval_samples_per_s=round(len(evaluation.rows) / evaluation.runtime_s, 3)
            if evaluation.runtime_s
            else None,
            peak_eval_memory_bytes=peak.peak_bytes,
            **peak.cuda_record("peak_eval_memory"),
            max_new_tokens=evaluation.max_new_tokens,
            eval_mode=cfg.eval.mode,
        )
    else:  # nothing about the test split is measured: no metrics, no headline, PSCP of NaN
        out.update(
            **metrics_record({}, {}, _paper_headline_name(cfg.dataset), cfg),
            eval_runtime_s=None,
            eval_samples_per_s=None,
            peak_eval_memory_bytes=None,
            max_new_tokens=None,
            eval_mode=cfg.eval.mode,
        )
    out["pscp"] = pscp_record(
        out["headline_value"],
        out["trainable_params"],
        out["flops_delta"],
        out["peak_memory_bytes"],
        cfg.metric.pscp,
    )
    return out


def validation_record(evaluation, data, cfg: DictConfig) -> dict[str, Any]:
    """result.json's ``validation`` block: the held-out rows' metrics in both conventions and headline."""
    metrics = metrics_record(evaluation.metrics, evaluation.metrics_paper, evaluation.paper_headline, cfg)
    return {
        "split": "validation",
        "n": len(evaluation.rows),
        "n_available": data.validation_available,
        "cap": cfg.eval.max_validation_samples,
        **{key: metrics[key] for key in VALIDATION_METRIC_KEYS},
        "eval_runtime_s": round(evaluation.runtime_s, 3),
        "mode": cfg.eval.mode,
    }


def _paper_headline_name(ds) -> str | None:
    """The metric PEFT-Bench reports for ``ds`` (the headline name when no test score exists)."""
    from bench.evaluation.scoring import PAPER_HEADLINES, paper_kind

    kind = paper_kind(ds)
    return PAPER_HEADLINES[kind] if kind else None


def _datasets_cache_under(cache_dir: str) -> None:
    """The datasets library's Arrow cache in ``<paths.cache_dir>/datasets`` (an explicit
    ``HF_DATASETS_CACHE`` wins). Its builders read ``datasets.config.HF_DATASETS_CACHE`` when they run,
    so setting it here works even after ``datasets`` was imported."""
    import os

    import datasets.config

    if "HF_DATASETS_CACHE" not in os.environ:
        datasets.config.HF_DATASETS_CACHE = Path(cache_dir).expanduser() / "datasets"


def _check_eval_cadence(cfg: DictConfig, train_set) -> None:
    """A step count ``trainer.eval_every`` beyond an epoch-sized run: no validation, no checkpoint."""
    from bench.errors import ConfigError
    from bench.training import steps_between_evals, total_steps

    if train_set is None or cfg.method.provider == "none":
        return
    every, steps = steps_between_evals(cfg, len(train_set)), total_steps(cfg, len(train_set))
    if every > steps:
        raise ConfigError(
            f"trainer.eval_every={cfg.trainer.eval_every} steps is more than the run's {steps} steps: no "
            "validation and no checkpoint would happen; use a fraction (0.05: every 5%) or fewer steps."
        )


def metrics_record(metrics, metrics_paper, paper_headline, cfg) -> dict[str, Any]:
    """Both conventions, the one chosen (``metric.convention``) and its headline, for result.json."""
    from bench.evaluation.scoring import Scores, headline

    scores = Scores(metrics, metrics_paper, paper_headline, [], [])
    name, value = headline(scores, cfg.dataset, cfg.metric.convention)
    return {
        "metrics": metrics,
        "metrics_paper": metrics_paper,
        "paper_headline_metric": paper_headline,
        "convention": cfg.metric.convention,
        "headline_metric": name,
        "headline_value": value,
    }


def _to_device(model, device: str) -> None:
    """Move ``model`` to ``device``; quantized models are placed when they load and cannot move."""
    if not getattr(model, "is_quantized", False):
        model.to(device)


def pscp_record(performance, trainable_params, flops_delta, peak_memory_bytes, constants) -> dict[str, Any]:
    """PSCP with its measured inputs and the constants used, for result.json."""
    from bench.metrics.pscp import pscp, pscp_factors, pscp_options

    costs = {
        "trainable_params": trainable_params,
        "flops_delta": flops_delta,
        "peak_memory_bytes": peak_memory_bytes,
    }
    options = pscp_options(constants)
    perf = float("nan") if performance is None else float(performance)
    return {
        "value": pscp(perf, *costs.values(), **options),
        "performance": performance,
        **costs,
        "factors": dataclasses.asdict(pscp_factors(*costs.values(), **options)),
        "constants": {**options, "probe_tokens": int(constants["probe_tokens"])},
    }
