"""Training with the PEFT-Bench protocol on transformers' Trainer.

AdamW, cosine schedule, warmup ratio 0.1, weight decay 1e-5; validation loss every ``trainer.eval_every``
(5%) of the steps, with a checkpoint at each; the checkpoint with the lowest validation loss is loaded
back at the end and is the one evaluated. Trainer loads it for every method but peft's prompt-learning
ones, which transformers refuses (peft issue #2256: their checkpoint holds the prompt encoder's *output*,
not its MLP/LSTM); for those the best checkpoint is loaded onto the base model here, as a user would load
the saved adapter.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.errors import Diverged
from bench.progress import log_above_bars, on_terminal

log = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    trainable_params: int  # exactly what the optimizer updates
    train_runtime_s: float
    train_samples_per_s: float
    steps: int
    best_checkpoint: str | None
    best_val_loss: float | None
    log_history: list[dict] = field(default_factory=list)
    resumed_from: str | None = None  # the checkpoint a re-launch continued from
    model: Any = None  # the model to evaluate: the one trained, or the best checkpoint loaded onto its base


def effective_learning_rate(cfg: DictConfig) -> float:
    """``trainer.learning_rate`` (else the method's), times ``trainer.learning_rate_scale``."""
    base = cfg.trainer.learning_rate if cfg.trainer.learning_rate is not None else cfg.method.learning_rate
    return float(base) * float(cfg.trainer.get("learning_rate_scale", 1.0))


def total_steps(cfg: DictConfig, n_train: int) -> int:
    """Optimizer steps of the run, counted as transformers' Trainer counts them (one process)."""
    t = cfg.trainer
    if t.max_steps > 0:
        return int(t.max_steps)
    per_epoch = max(1, math.ceil(n_train / t.batch_size) // t.gradient_accumulation_steps)
    return max(1, math.ceil(t.num_train_epochs * per_epoch))


def steps_between_evals(cfg: DictConfig, n_train: int) -> int:
    """``trainer.eval_every`` in steps: a fraction (0, 1] of the run's steps, rounded up, or a step count.

    Computed here because Trainer reads 1.0 as "every step", not "once, at the end".
    """
    every = float(cfg.trainer.eval_every)
    if every > 1:
        return int(every)
    return max(1, math.ceil(every * total_steps(cfg, n_train)))


def is_prompt_learning(model) -> bool:
    """A peft prompt-learning model (soft prompts, prefixes): Trainer cannot reload its best checkpoint."""
    configs = getattr(model, "peft_config", None)
    return bool(configs) and any(getattr(c, "is_prompt_learning", False) for c in configs.values())


MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # hardware.precision -> accelerate's name


def own_mixed_precision(precision: str) -> None:
    """Give this run its own precision in accelerate's process-wide state.

    TrainingArguments writes ``ACCELERATE_MIXED_PRECISION`` into the environment and reads it back as its
    default, and accelerate keeps its first ``AcceleratorState`` for the whole process: after one bf16
    run, every later run of the same process (a local ``--multirun``, a test session) trained under bf16
    autocast whatever its own precision said.
    """
    import os

    from accelerate.state import AcceleratorState

    os.environ["ACCELERATE_MIXED_PRECISION"] = MIXED_PRECISION[str(precision)]
    AcceleratorState._reset_state(reset_partial_state=True)


def training_arguments(
    cfg: DictConfig, output_dir: Path, n_train: int, validate: bool = True, prompt_learning: bool = False
):
    """Trainer's arguments. ``validate=False`` (no validation split): no evaluations, and the last
    checkpoint is the result; checkpoints are still saved every ``eval_every`` for resuming.
    ``prompt_learning``: Trainer still tracks the best checkpoint (and keeps it through
    ``save_total_limit``) but does not load it; :func:`train` does."""
    from transformers import TrainingArguments

    t, hw = cfg.trainer, cfg.hardware
    every = steps_between_evals(cfg, n_train)
    method = OmegaConf.to_container(cfg.method.training, resolve=True) if cfg.method.training else {}
    report_to = ["wandb"] if cfg.logger.name == "wandb" else []
    own_mixed_precision(hw.precision)
    args = TrainingArguments(
        output_dir=str(output_dir),
        seed=cfg.seed,
        data_seed=cfg.seed,
        max_steps=t.max_steps,
        num_train_epochs=t.num_train_epochs,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=effective_learning_rate(cfg),
        weight_decay=t.weight_decay,
        warmup_ratio=t.warmup_ratio,
        lr_scheduler_type=t.lr_scheduler_type,
        optim=method.get("optim", t.optim),  # GaLore: an optimizer choice of the method
        optim_target_modules=method.get("optim_target_modules"),
        optim_args=method.get("optim_args"),
        max_grad_norm=t.max_grad_norm,
        eval_strategy="steps" if validate else "no",
        eval_steps=every if validate else None,
        save_strategy="steps",
        save_steps=every,
        save_total_limit=2,  # the best and the latest survive (Trainer's rotation spares the best)
        load_best_model_at_end=t.load_best_model_at_end and validate and not prompt_learning,
        metric_for_best_model="eval_loss" if validate else None,  # sets state.best_model_checkpoint
        greater_is_better=False,
        logging_steps=t.logging_steps,
        group_by_length=t.group_by_length,
        report_to=report_to,
        run_name=output_dir.parent.name,
        use_cpu=hw.device == "cpu",
        bf16=hw.precision == "bf16",
        fp16=hw.precision == "fp16",
        dataloader_num_workers=hw.dataloader_num_workers,
        remove_unused_columns=False,
        disable_tqdm=not on_terminal(),  # bars on a terminal; log lines (our callback) in SLURM logs
        save_safetensors=True,
    )
    return one_gpu(args)


def one_gpu(args):
    """One GPU per run: on a node with several visible GPUs, Trainer would wrap the model in
    ``nn.DataParallel`` (batch x GPUs, other eval/checkpoint cadence, other memory per GPU). Its GPU
    count is set to one (the current device); use several GPUs with a distributed launcher or give each
    run its own GPU with ``CUDA_VISIBLE_DEVICES`` (the SLURM presets ask for one GPU per job)."""
    if args.n_gpu > 1:
        log.warning("%d GPUs visible: training on one (no DataParallel)", args.n_gpu)
        args._n_gpu = 1
    return args


def method_optimizer(cfg: DictConfig, model):
    """An optimizer the method brings (LoRA+: a larger learning rate for B), else None (Trainer's AdamW).

    Same AdamW and weight decay as the protocol; the cosine schedule and warmup still come from
    TrainingArguments, since Trainer builds the scheduler around a given optimizer.
    """
    training = cfg.method.training or {}
    if "loraplus_lr_ratio" not in training:
        return None
    import torch
    from peft.optimizers import create_loraplus_optimizer

    t = cfg.trainer
    kwargs = (
        {"loraplus_lr_embedding": float(training["loraplus_lr_embedding"])}
        if "loraplus_lr_embedding" in training
        else {}
    )
    return create_loraplus_optimizer(
        model=model,
        optimizer_cls=torch.optim.AdamW,
        lr=effective_learning_rate(cfg),
        loraplus_lr_ratio=float(training["loraplus_lr_ratio"]),
        loraplus_weight_decay=float(t.weight_decay),
        **kwargs,
    )


COMPLETE_MARKER = ".complete"  # written into a checkpoint folder once Trainer has finished saving it


def latest_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` holding the completion marker whose files all read whole.

    Half-written ones (no marker) are ignored; a marked one with a damaged file (a truncated safetensors,
    bad JSON) is named in a warning and moved aside to ``corrupt-checkpoint-N`` (out of Trainer's
    rotation), and the previous complete one is used.
    """
    from bench.atomic import unreadable_file

    done = [p for p in output_dir.glob("checkpoint-*") if (p / COMPLETE_MARKER).exists()]
    for folder in sorted(done, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        problem = unreadable_file(folder)
        if problem is None:
            return folder
        aside = folder.with_name(f"corrupt-{folder.name}")
        log.warning("checkpoint unreadable (%s): moved to %s, resuming from an older one", problem, aside)
        shutil.rmtree(aside, ignore_errors=True)
        folder.rename(aside)
    return None


def checkpoint_runtime(checkpoint: Path | None) -> float:
    """Training seconds up to ``checkpoint``, over all the segments that led to it (0 if unknown)."""
    if checkpoint is None:
        return 0.0
    try:
        saved = json.loads((checkpoint / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return 0.0
    return float(saved.get("train_runtime_s", 0.0)) if isinstance(saved, dict) else 0.0


def _callbacks(prior_runtime_s: float = 0.0) -> list:
    """Loss logs to logging (Hydra's job log), divergence checks, checkpoint completion markers (with the
    training seconds so far, ``prior_runtime_s`` from the segments before a resume included)."""
    from transformers import TrainerCallback

    class Protocol(TrainerCallback):
        started = time.perf_counter()

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            shown = {k: round(v, 5) if isinstance(v, float) else v for k, v in logs.items()}
            log.info("step %d/%d %s", state.global_step, state.max_steps, shown)
            for key in ("loss", "eval_loss", "grad_norm"):
                if key in logs and not math.isfinite(float(logs[key])):
                    raise Diverged(f"{key} is {logs[key]} at step {state.global_step}")

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                runtime = prior_runtime_s + time.perf_counter() - self.started
                marker = {"step": state.global_step, "train_runtime_s": round(runtime, 3)}
                (folder / COMPLETE_MARKER).write_text(json.dumps(marker))

    return [Protocol()]


def _bar_only():
    """Trainer's progress bar (on a terminal) without its ``on_log``, which wrote every log dict with
    ``tqdm.write`` beside the Protocol callback's log line: each record showed twice."""
    from transformers import ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    return BarOnly()


def train(cfg: DictConfig, model, tokenizer, train_set, val_set, output_dir: Path) -> TrainOutcome:
    """Train ``model`` in place. ``outcome.model`` holds the best checkpoint's weights (the last ones when
    ``val_set`` is None): ``model`` itself, or, for prompt learning, the best checkpoint on its base."""
    from transformers import PrinterCallback, ProgressCallback

    from bench.data.collate import make_collator
    from bench.length_sampler import LengthGroupedTrainer as Trainer

    optimizer = method_optimizer(cfg, model)  # None: Trainer's own AdamW
    prompt_learning = is_prompt_learning(model)
    validate = val_set is not None
    trainer = Trainer(
        model=model,
        args=training_arguments(cfg, output_dir, len(train_set), validate, prompt_learning),
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=make_collator(model, tokenizer),
        optimizers=(optimizer, None),  # the scheduler is always Trainer's (cosine, warmup)
    )
    trainer.remove_callback(PrinterCallback)  # one line per log record: the Protocol callback's
    if trainer.pop_callback(ProgressCallback) is not None:  # on a terminal (disable_tqdm off)
        trainer.add_callback(_bar_only())
    resume = latest_complete_checkpoint(output_dir) if output_dir.exists() else None
    prior_runtime_s = checkpoint_runtime(resume)
    for callback in _callbacks(prior_runtime_s):
        trainer.add_callback(callback)
    if resume is not None:
        log.info("resuming from %s", resume)
        for partial in output_dir.glob("checkpoint-*"):  # a kill mid-save left these: not trusted
            if not (partial / COMPLETE_MARKER).exists():
                shutil.rmtree(partial, ignore_errors=True)
    config = getattr(model, "config", None)
    use_cache = getattr(config, "use_cache", None)
    if config is not None:
        config.use_cache = False  # a training forward pass has no use for the KV cache it would fill
    try:
        with warnings.catch_warnings(), log_above_bars():  # log lines above the bar, not through it
            warnings.filterwarnings("ignore", message="mtime may not be reliable")
            result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    finally:
        if config is not None:
            config.use_cache = use_cache
    trainable = sum(p.numel() for group in trainer.optimizer.param_groups for p in group["params"])
    state = trainer.state
    if prompt_learning and validate and cfg.trainer.load_best_model_at_end and state.best_model_checkpoint:
        model = load_best_prompt_checkpoint(cfg, model, Path(state.best_model_checkpoint))
    log.info(
        "trained %d steps; best validation loss %s at %s",
        state.global_step,
        "-" if state.best_metric is None else f"{state.best_metric:.4g}",
        state.best_model_checkpoint,
    )
    # Trainer reports the last segment's time against the whole run's samples: add the segments up.
    segment = float(result.metrics["train_runtime"])
    samples = float(result.metrics["train_samples_per_second"]) * segment
    runtime = prior_runtime_s + segment
    history = _whole_run_history(list(state.log_history), runtime, samples, resumed=resume is not None)
    return TrainOutcome(
        trainable_params=int(trainable),
        train_runtime_s=runtime,
        train_samples_per_s=samples / runtime if runtime else 0.0,
        steps=int(state.global_step),
        best_checkpoint=state.best_model_checkpoint,
        best_val_loss=state.best_metric,
        log_history=history,
        resumed_from=resume.name if resume else None,
        model=model,
    )


def _whole_run_history(history: list[dict], runtime: float, samples: float, resumed: bool) -> list[dict]:
    """Trainer's log history with its closing entry for the whole run, not the last segment.

    The closing entry gets the summed runtime and throughput; after a resume its ``train_loss`` (Trainer's
    mean over the last segment's steps only) is dropped, since the steps before the resume are known only
    through the logged window means. The per-step ``loss`` entries equal an uninterrupted run's except a
    window that spans the resume point (Trainer's running loss is not checkpointed: that entry averages the
    steps after the resume only); checkpoints every ``logging_steps`` multiple make them all equal.
    """
    for entry in history:
        if "train_runtime" in entry:
            entry["train_runtime"] = round(runtime, 4)
            entry["train_samples_per_second"] = round(samples / runtime, 3) if runtime else 0.0
            if resumed:
                entry.pop("train_loss", None)
    return history


def load_best_prompt_checkpoint(cfg: DictConfig, model, checkpoint: Path):
    """The best checkpoint of a prompt-learning run, loaded onto the run's (untouched) base model.

    The checkpoint holds what ``save_pretrained`` writes: the virtual tokens as the prompt encoder
    produces them (P-Tuning's LSTM/MLP and Prefix Tuning's projection are training devices only), so
    the model comes back in peft's inference form, the form the saved adapter reloads into.
    """
    from bench.methods import load_method

    log.info("loading the best checkpoint %s (prompt learning: not done by Trainer)", checkpoint.name)
    base = model.get_base_model()
    device = next(base.parameters()).device
    best = load_method(base, cfg.method, checkpoint)
    best.to(device)
    return best
