"""Batched greedy generation with left padding and a shared-prefix cache."""

from __future__ import annotations

import torch

from bench.evaluation.prefix import expanded_cache, kv_cache_works, shared_prefix
from bench.progress import Progress


def drops_position_ids(model) -> bool:
    """peft's prompt-learning models (soft prompts) ignore ``position_ids``, so padding would shift the
    real tokens against the virtual ones: they need unpadded batches."""
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


def _batches(prompt_ids: list[list[int]], batch_size: int, same_length: bool) -> list[list[int]]:
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    if not same_length:
        return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(len(prompt_ids[i]), []).append(i)
    return [g[s : s + batch_size] for g in groups.values() for s in range(0, len(g), batch_size)]


@torch.inference_mode()
def generate_texts(
    model,
    tokenizer,
    prompt_ids: list[list[int]],
    *,
    max_new_tokens: int,
    batch_size: int,
    same_length_batches: bool = False,
) -> list[str]:
    """Greedy continuations of each prompt (special tokens dropped), in input order.

    Prompts are batched by length (less padding). The prefix all prompts share is encoded once
    (bench.evaluation.prefix); each row is then ``prefix | left padding | own tokens``, and the
    attention mask gives every real token the position it would have alone, so results do not depend
    on the batch size. ``same_length_batches`` batches only prompts of equal length and shares no
    prefix: peft's soft-prompt models drop ``position_ids``, so padding would shift real tokens against
    the virtual ones. Progress (rows done, rows/s, ETA) goes to a bar or the log (bench.progress).
    """
    device = next(model.parameters()).device
    texts: list[str] = [""] * len(prompt_ids)
    pad_id = tokenizer.pad_token_id
    model.eval()
    n_prefix, prefix_kv = (0, None) if same_length_batches else shared_prefix(model, prompt_ids, device)
    use_cache = prefix_kv is not None or kv_cache_works(model)
    with Progress("generate", len(prompt_ids)) as progress:
        for batch in _batches(prompt_ids, batch_size, same_length_batches):
            width = max(len(prompt_ids[i]) for i in batch) - n_prefix
            input_ids = torch.full((len(batch), n_prefix + width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), n_prefix + width), dtype=torch.long)
            input_ids[:, :n_prefix] = torch.tensor(prompt_ids[batch[0]][:n_prefix])
            attention[:, :n_prefix] = 1
            for row, i in enumerate(batch):
                own = prompt_ids[i][n_prefix:]
                input_ids[row, n_prefix + width - len(own) :] = torch.tensor(own)
                attention[row, n_prefix + width - len(own) :] = 1
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                past_key_values=expanded_cache(prefix_kv, len(batch)) if prefix_kv else None,
                use_cache=use_cache,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new_tokens = out[:, n_prefix + width :]
            for row, i in enumerate(batch):
                texts[i] = tokenizer.decode(new_tokens[row], skip_special_tokens=True)
            progress.update(len(batch))
    return texts
