"""Prediction on one split (test, or the held-out validation rows): greedy answers parsed into labels
(generate mode) or label likelihoods (score mode), then metrics in both conventions."""

from __future__ import annotations

import time
from dataclasses import dataclass

from omegaconf import DictConfig

from bench.config.schema import LABEL_TASKS
from bench.data.pipeline import EvalSplit, PreparedData
from bench.evaluation.generate import drops_position_ids, generate_texts
from bench.evaluation.prefix import kv_cache_works
from bench.evaluation.score import rank_labels, score_candidates
from bench.evaluation.scoring import example_id, score_answers

DEFAULT_GENERATION_TOKENS = 256


@dataclass
class Evaluation:
    rows: list[dict]  # one per example of the split: id, prompt, generated, reference, parsed, valid
    metrics: dict[str, float]  # peftbench's convention
    metrics_paper: dict[str, float]  # PEFT-Bench's scoring script (bench.metrics.paper)
    paper_headline: str | None
    runtime_s: float
    max_new_tokens: int


# The longest answer form the parser reads, per label: room for a lead-in and an option marker, so a
# model that writes "Answer: C" is read as C instead of being cut to "Answer" (letter labels got 2 tokens).
LABEL_ANSWER_FORM = "The correct answer is ({label})."


def max_new_tokens_for(cfg: DictConfig, tokenizer) -> int:
    """``eval.max_new_tokens``; else, for label tasks, the tokens of ``LABEL_ANSWER_FORM`` for the longest
    label + 1 (EOS); else the dataset's own answer budget (``dataset.max_new_tokens``), else 256."""
    if cfg.eval.max_new_tokens:
        return int(cfg.eval.max_new_tokens)
    if cfg.dataset.task_type in LABEL_TASKS:
        lengths = [
            len(tokenizer(LABEL_ANSWER_FORM.format(label=label), add_special_tokens=False)["input_ids"])
            for label in cfg.dataset.label_names
        ]
        return max(lengths) + 1
    return int(cfg.dataset.max_new_tokens or DEFAULT_GENERATION_TOKENS)


def predict(cfg: DictConfig, model, tokenizer, data: PreparedData, split: str = "test") -> Evaluation:
    """Predict ``split`` (``test``, or ``validation``: the held-out rows prepared with
    ``eval.validation``) in ``eval.mode`` (generate: the protocol; score: label likelihoods).

    Mergeable adapters are folded into the weights for the duration (the same outputs, up to float
    rounding, without the adapter's extra work per layer).
    """
    from bench.methods import merged_for_inference
    from bench.models import inference_autocast

    rows = data.eval_split(split)
    # a bf16 base predicts under bf16 autocast, as it trained: its fp32 trainable parameters meet bf16
    with merged_for_inference(model), inference_autocast(model):
        if cfg.eval.mode == "score":
            return _predict_by_score(cfg, model, tokenizer, rows)
        return _predict_by_generation(cfg, model, tokenizer, rows)


def _predict_by_score(cfg: DictConfig, model, tokenizer, data: EvalSplit) -> Evaluation:
    ds = cfg.dataset
    labels = list(ds.label_names)
    start = time.perf_counter()
    scores = score_candidates(
        model,
        tokenizer,
        data.prompt_ids,
        labels,
        batch_size=cfg.eval.batch_size,
        # the fast path needs position_ids, a working KV cache and 4-D masks: soft prompts and the
        # adapters library's models (whose cache stays empty) take the plain one
        shared_prompt=not drops_position_ids(model) and kv_cache_works(model),
    )
    runtime = time.perf_counter() - start
    parsed = rank_labels(scores, labels)
    references = [ex.reference for ex in data.examples]  # all golds for multi-answer rows
    scored = score_answers(ds, parsed, references)
    rows = [
        {
            "id": _example_id(data, i),
            "prompt": prompt,
            "generated": None,
            "scores": dict(zip(labels, row, strict=True)),
            "reference": ref,
            "parsed": p,
            "valid": True,
        }
        for i, (prompt, row, ref, p) in enumerate(zip(data.prompts, scores, references, parsed, strict=True))
    ]
    return Evaluation(rows, scored.metrics, scored.metrics_paper, scored.paper_headline, runtime, 0)


def _predict_by_generation(cfg: DictConfig, model, tokenizer, data: EvalSplit) -> Evaluation:
    ds = cfg.dataset
    max_new = max_new_tokens_for(cfg, tokenizer)
    start = time.perf_counter()
    texts = generate_texts(
        model,
        tokenizer,
        data.prompt_ids,
        max_new_tokens=max_new,
        batch_size=cfg.eval.batch_size,
        same_length_batches=drops_position_ids(model),
    )
    runtime = time.perf_counter() - start

    references = [ex.reference for ex in data.examples]  # all golds for multi-answer rows
    scored = score_answers(ds, texts, references)
    rows = [
        {
            "id": _example_id(data, i),
            "prompt": prompt,
            "generated": text,
            "reference": ref,
            "parsed": p,
            "valid": v,
        }
        for i, (prompt, text, ref, p, v) in enumerate(
            zip(data.prompts, texts, references, scored.parsed, scored.valid, strict=True)
        )
    ]
    return Evaluation(rows, scored.metrics, scored.metrics_paper, scored.paper_headline, runtime, max_new)


def _example_id(data: EvalSplit, index: int) -> str:
    """The row's stable id: the dataset's row id (else its index) and a hash of its prompt."""
    row_id = getattr(data.examples[index], "row_id", "") or str(index)
    return example_id(row_id, data.prompts[index])
