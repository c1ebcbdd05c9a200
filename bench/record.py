"""The schema of ``result.json``: :class:`RunRecord`, one documented field per key the runner writes.

``bench.run`` builds the record as a dict while the run goes (``status: running`` first, the rest when it
ends) and passes it through :func:`conform` before every write, so a key that is not declared here fails
the run's own tests instead of reaching readers undocumented. Readers (``multirun_analysis``,
``bench.rescore``, ``bench.sweep``) read these keys; ``python -m bench.record`` prints the schema.

Scores are fractions (0.62, not 62); sizes are bytes; times are seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

RUN_STATUSES = ("running", "success", "failed", "diverged")


def _doc(text: str, default: Any = None) -> Any:
    if isinstance(default, dict | list):  # a fresh empty container per record
        return field(default_factory=type(default), metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass
class ValidationRecord:
    """``result.json["validation"]``: the held-out validation split, predicted with ``eval.validation``."""

    split: str = _doc("always 'validation'", "validation")
    n: int | None = _doc("rows predicted (after eval.max_validation_samples)")
    n_available: int | None = _doc("rows held out of train (dataset.val_fraction, the run seed)")
    cap: int | None = _doc("eval.max_validation_samples; null: every held-out row")
    metrics: dict[str, float] = _doc("peftbench's convention, as the test split's `metrics`", {})
    metrics_paper: dict[str, float] = _doc("PEFT-Bench's scoring script, as `metrics_paper`", {})
    paper_headline_metric: str | None = _doc("the paper convention's headline metric name")
    headline_metric: str | None = _doc("the chosen convention's headline metric name")
    headline_value: float | None = _doc("its value: a search's objective (bench.search)")
    eval_runtime_s: float | None = _doc("prediction time on the validation rows")
    mode: str | None = _doc("eval.mode: generate | score")


@dataclass
class RunRecord:
    """One run's ``result.json``. Every key the runner writes is a field here, with its meaning."""

    # identity and provenance (written when the run starts, status running)
    status: str = _doc("running | success | failed | diverged (a run killed from outside stays running)")
    error: str | None = _doc("'ExceptionType: message' of a failed or diverged run; null otherwise")
    traceback: str | None = _doc("the failure's traceback (failed and diverged runs only)")
    run_key: str | None = _doc("<model>__<method>__<dataset>__seed<seed>__<hash of the identity settings>")
    model: str | None = _doc("model.name")
    method: str | None = _doc("method.name (a paper variant keeps its base method's name)")
    method_family: str | None = _doc("method.family: reparametrized, soft_prompt, adapter, selective, ...")
    peft_type: str | None = _doc("method.peft_type (peft's PeftType name; a plugin's own type)")
    dataset: str | None = _doc("dataset.name, e.g. glue/sst2")
    seed: int | None = _doc("the run seed")
    started_at: str | None = _doc("local time the run started, ISO 8601 with offset")
    finished_at: str | None = _doc("local time the record was last written")
    wall_time_s: float | None = _doc("the whole run: loading, training, prediction")
    config: dict[str, Any] = _doc("the resolved config (every group), as the run used it", {})
    versions: dict[str, str | None] = _doc("versions of torch, transformers, peft, ... (null: absent)", {})
    git_commit: str | None = _doc("the checkout's commit, '-dirty' with uncommitted changes")
    python: str | None = _doc("Python version")
    host: str | None = _doc("machine name")
    # where it ran
    device: str | None = _doc("cpu | cuda (hardware.device resolved)")
    device_info: dict[str, Any] = _doc("GPU name, memory, CUDA and driver versions (nulls on CPU)", {})
    # sizes of the model and the data
    total_params: int | None = _doc("parameters of the model with the method applied")
    trainable_params: int | None = _doc("parameters that receive gradients")
    n_train: int | None = _doc("training rows after caps and the validation hold-out")
    n_val: int | None = _doc("held-out validation rows (the validation loss)")
    n_test: int | None = _doc("test rows predicted (0 with eval.test=false)")
    dropped_rows: dict[str, int] = _doc("rows without a target, per hub split ('train', 'test')", {})
    truncated_rows: dict[str, int] = _doc("rows cut to trainer.max_seq_length, per split", {})
    # training
    learning_rate: float | None = _doc("the effective learning rate (x trainer.learning_rate_scale)")
    train_runtime_s: float | None = _doc("training time, summed over resumed segments")
    train_samples_per_s: float | None = _doc("training rows per second over the whole run")
    train_steps: int | None = _doc("optimizer steps")
    best_checkpoint: str | None = _doc("the checkpoint with the lowest validation loss (the one evaluated)")
    best_val_loss: float | None = _doc("its validation loss (search=lr_loss's objective)")
    resumed_from: str | None = _doc("checkpoint-N, or 'adapter' (a finished training evaluated again)")
    peak_memory_bytes: int | None = _doc("training peak of the allocator (torch.cuda max allocated; RSS)")
    peak_memory_reserved_bytes: int | None = _doc("CUDA only: max reserved by the caching allocator")
    peak_memory_device_bytes: int | None = _doc("CUDA only: device memory used (NVML), as the paper measured")
    gradient_checkpointing: bool | None = _doc("true when training recomputed activations (QLoRA's prep)")
    kbit_training_prep: bool | None = _doc("peft's prepare_model_for_kbit_training ran (QLoRA)")
    # cost probes
    base_flops: int | None = _doc("forward FLOPs of the base model on metric.pscp.probe_tokens tokens")
    flops_delta: int | None = _doc("the method's extra forward FLOPs on the same probe (PSCP's input)")
    # evaluation
    test_evaluated: bool | None = _doc("false: a search trial (eval.test=false), no test score")
    validation: ValidationRecord | None = _doc("the validation split's scores (eval.validation); else null")
    metrics: dict[str, float] = _doc("test metrics in peftbench's convention, invalid_rate included", {})
    metrics_paper: dict[str, float] = _doc("test metrics as PEFT-Bench's scoring script computes them", {})
    paper_headline_metric: str | None = _doc("the paper convention's headline metric name")
    convention: str | None = _doc("metric.convention: which of the two gives the headline")
    headline_metric: str | None = _doc("the headline metric's name in that convention")
    headline_value: float | None = _doc("its value; null without a test score")
    eval_runtime_s: float | None = _doc("test prediction time")
    eval_samples_per_s: float | None = _doc("test rows per second")
    peak_eval_memory_bytes: int | None = _doc("prediction peak of the allocator")
    peak_eval_memory_reserved_bytes: int | None = _doc("CUDA only: prediction's max reserved")
    peak_eval_memory_device_bytes: int | None = _doc("CUDA only: prediction's device memory (NVML)")
    max_new_tokens: int | None = _doc("generation budget per answer (0 in score mode)")
    eval_mode: str | None = _doc("eval.mode: generate | score")
    pscp: dict[str, Any] = _doc("PSCP: value, performance, its measured inputs, factors and constants", {})
    metrics_before_rescore: list[dict[str, Any]] = _doc(
        "earlier scores replaced by python -m bench.rescore, with when and by which commit", []
    )


class RecordSchemaError(ValueError):
    """A result record with a key that :class:`RunRecord` does not declare, or a wrong status."""


def fields_doc(cls: type = RunRecord) -> dict[str, str]:
    """``{field: its documentation}`` in declaration order."""
    return {f.name: f.metadata["doc"] for f in dataclasses.fields(cls)}


def conform(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` unchanged if every key (and the validation block's) is declared, else
    :class:`RecordSchemaError` naming the keys and where to declare them."""
    unknown = sorted(set(record) - set(fields_doc()))
    block = record.get("validation")
    if isinstance(block, dict):
        unknown += [f"validation.{k}" for k in sorted(set(block) - set(fields_doc(ValidationRecord)))]
    if unknown:
        raise RecordSchemaError(
            f"result record keys not in bench.record.RunRecord: {', '.join(unknown)}; declare each with its "
            "meaning there (readers rely on that schema)"
        )
    if record.get("status") not in RUN_STATUSES:
        raise RecordSchemaError(f"result record status {record.get('status')!r}: one of {RUN_STATUSES}")
    return record


def main() -> None:
    """``python -m bench.record``: the documented schema of result.json."""
    for name, doc in fields_doc().items():
        print(f"{name:34} {doc}")
    print("\nvalidation block:")
    for name, doc in fields_doc(ValidationRecord).items():
        print(f"  {name:32} {doc}")


if __name__ == "__main__":
    main()
