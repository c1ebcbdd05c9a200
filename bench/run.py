"""One run: model + tokenizer -> method -> data -> train -> predict on the test split -> metrics -> results.

The run writes ``result.json`` (status ``running`` at start; ``success`` or ``failed`` from a ``finally``
block), ``predictions.jsonl``, the adapter (saved by the method's provider with its library's own saving:
peft's ``save_pretrained``, adapters' ``save_adapter``, the full model for full fine-tuning) and
``log_history.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import platform
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.config.run_key import run_key
from bench.errors import Diverged
from bench.results import git_commit, package_versions, write_json_atomic, write_jsonl_atomic
from bench.tracking import log_result, tracker

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
PREDICTIONS_FILE = "predictions.jsonl"


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
    record = _base_record(cfg)
    write_json_atomic(run_dir / RESULT_FILE, record)
    start = time.perf_counter()
    with contextlib.ExitStack() as finish_tracker:  # wandb.finish() whatever happens
        tracked = None
        try:
            tracked = finish_tracker.enter_context(tracker(cfg, run_dir, record["run_key"]))
            record.update(_execute(cfg, run_dir))
            record["status"] = "success"
        except Exception as err:  # the record must say why; the caller decides the exit code
            record["status"] = "diverged" if isinstance(err, Diverged) else "failed"
            record["error"] = f"{type(err).__name__}: {err}"
            record["traceback"] = traceback.format_exc()
            log.error("run failed: %s", record["error"])
            log.debug("%s", record["traceback"])
        finally:
            record["wall_time_s"] = round(time.perf_counter() - start, 3)
            record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_json_atomic(run_dir / RESULT_FILE, record)
            log_result(tracked, record)
    return record


def _execute(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    import torch
    from transformers import set_seed

    from bench.allocator import keep_freed_memory
    from bench.config.validate import resolve_device, validate
    from bench.data.pipeline import prepare_data
    from bench.evaluation.predict import predict
    from bench.measure import PeakMemory, base_forward_flops, forward_flops
    from bench.methods import apply_method, check_requirements, count_parameters, load_kwargs, save_method
    from bench.models import load_model_and_tokenizer
    from bench.training import effective_learning_rate, train

    validate(cfg)
    check_requirements(cfg.method)  # missing packages or GPU: a clear error before any weights load
    device = resolve_device(cfg.hardware.device)
    if cfg.hardware.num_threads:
        torch.set_num_threads(cfg.hardware.num_threads)
    if cfg.hardware.keep_freed_memory:
        keep_freed_memory()  # before the model and the data allocate anything

    # QLoRA: the base loads quantized (load_kwargs is empty for every other method)
    model, tokenizer = load_model_and_tokenizer(
        cfg.model, cfg.paths.cache_dir, cfg.hardware.precision, **load_kwargs(cfg.method)
    )  # hardware.precision=bf16: bf16 base weights (bench.models.weights_dtype)
    data = prepare_data(cfg, tokenizer)  # data errors surface before the method is applied
    _to_device(model, device)
    probe = cfg.metric.pscp.probe_tokens
    # before the method: the reference for extra FLOPs (counted once per architecture, then from disk)
    base_flops = base_forward_flops(model, probe, cfg.paths.cache_dir)
    set_seed(cfg.seed)  # the method's initialisation depends on the seed only, not on what loaded before
    model = apply_method(model, cfg.method)
    _to_device(model, device)
    trainable, total = count_parameters(model)
    out: dict[str, Any] = {
        "device": device,
        "total_params": total,
        "trainable_params": trainable,
        "n_train": len(data.train) if data.train is not None else 0,
        "n_val": len(data.val) if data.val is not None else 0,
        "n_test": len(data.test_examples),
        "dropped_rows": dict(data.dropped_rows),  # rows without a target, per hub split (never fatal)
        "truncated_rows": dict(data.truncated_rows),  # rows cut to trainer.max_seq_length, per split
        "learning_rate": effective_learning_rate(cfg) if trainable else None,
        "train_runtime_s": 0.0,
        "train_samples_per_s": None,
        "peak_memory_bytes": 0,
    }

    if cfg.method.provider != "none":
        if trainable == 0:
            raise RuntimeError(f"method {cfg.method.name!r} left no trainable parameters")
        checkpoints = run_dir / "checkpoints"
        with PeakMemory(device) as peak:
            outcome = train(cfg, model, tokenizer, data.train, data.val, checkpoints)
        model = outcome.model  # the best checkpoint's weights are the ones saved and evaluated
        write_json_atomic(run_dir / "log_history.json", outcome.log_history)
        out.update(
            trainable_params=outcome.trainable_params,
            train_runtime_s=round(outcome.train_runtime_s, 3),
            train_samples_per_s=round(outcome.train_samples_per_s, 3),
            train_steps=outcome.steps,
            best_checkpoint=Path(outcome.best_checkpoint).name if outcome.best_checkpoint else None,
            best_val_loss=outcome.best_val_loss,
            resumed_from=outcome.resumed_from,
            peak_memory_bytes=peak.peak_bytes,
        )
        if cfg.save_adapter:
            save_method(model, cfg.method, run_dir / "adapter")
        shutil.rmtree(checkpoints, ignore_errors=True)  # the best one is saved as the adapter

    tuned_flops = forward_flops(model, probe) if cfg.method.provider != "none" else base_flops
    out.update(base_flops=base_flops, flops_delta=max(0, tuned_flops - base_flops))

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
        max_new_tokens=evaluation.max_new_tokens,
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
