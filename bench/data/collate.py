"""Training batches: logits only where the loss needs them.

A causal LM computes its vocabulary projection (the LM head) at every position, but the loss only reads
the positions that predict answer tokens (the prompt is masked with -100). Answers sit at the end of each
sequence, so with left padding they line up at the right edge of the batch: transformers'
``logits_to_keep`` then computes the head over the last few columns only. On Work A's 34M Llama (vocab
8192) that skips ~15% of the training FLOPs; on SmolLM2 (vocab 49152), ~20%.

Left padding is exact: explicit ``position_ids`` give every row the positions it would have alone.
Models that ignore ``position_ids`` (peft's soft prompts) or lack ``logits_to_keep`` get plain
right-padded batches (:func:`make_collator` decides).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from bench.data.prompts import IGNORE_INDEX


@dataclass
class AnswerTailCollator:
    """Left-pads a batch and keeps labels (and logits) for the last ``k + 1`` positions only, where ``k``
    is the longest answer in the batch: the extra position is the one that predicts the first answer
    token. transformers' causal-LM loss shifts labels by one inside the kept window."""

    pad_token_id: int

    def __call__(self, features: list[dict]) -> dict:
        lengths = [len(f["input_ids"]) for f in features]
        width = max(lengths)
        tails = [len(f["labels"]) - _first_label(f["labels"]) for f in features]
        keep = min(max(tails) + 1, width)
        batch = len(features)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((batch, width), dtype=torch.long)
        positions = torch.zeros((batch, width), dtype=torch.long)
        labels = torch.full((batch, keep), IGNORE_INDEX, dtype=torch.long)
        for row, (f, n) in enumerate(zip(features, lengths, strict=True)):
            input_ids[row, width - n :] = torch.as_tensor(f["input_ids"])
            attention[row, width - n :] = 1
            positions[row, width - n :] = torch.arange(n)
            tail = f["labels"][-keep:]
            labels[row, keep - len(tail) :] = torch.as_tensor(tail)
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "position_ids": positions,
            "labels": labels,
            "logits_to_keep": keep,
        }


def _first_label(labels: list[int]) -> int:
    for i, label in enumerate(labels):
        if label != IGNORE_INDEX:
            return i
    return len(labels)


def supports_answer_tail(model) -> bool:
    """Whether ``model`` honours ``position_ids`` and ``logits_to_keep`` (most HF causal LMs under
    LoRA-like methods and adapters; not peft's prompt-learning models)."""
    from bench.evaluation.generate import drops_position_ids

    if drops_position_ids(model):
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(type(base).forward).parameters
    return "logits_to_keep" in params and "position_ids" in params


def make_collator(model, tokenizer):
    """The answer-tail collator where the model allows it, else right padding (DataCollatorForSeq2Seq)."""
    if supports_answer_tail(model):
        return AnswerTailCollator(tokenizer.pad_token_id)
    from transformers import DataCollatorForSeq2Seq

    tokenizer.padding_side = "right"
    return DataCollatorForSeq2Seq(
        tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt"
    )
