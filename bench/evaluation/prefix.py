"""The prompt prefix every test prompt shares (system prompt, instruction), encoded once.

Score and generate modes both start each batch from this cache instead of re-encoding the prefix per
prompt: on SST-2 with SmolLM2's chat template that is about half of every prompt's tokens.
"""

from __future__ import annotations

import torch


def shared_prefix_length(prompt_ids: list[list[int]]) -> int:
    """Tokens all prompts start with, leaving at least one token of each prompt outside the prefix."""
    if not prompt_ids:
        return 0
    first, n = prompt_ids[0], min(len(p) for p in prompt_ids) - 1
    length = 0
    while length < n and all(p[length] == first[length] for p in prompt_ids):
        length += 1
    return length


def shared_prefix(model, prompt_ids: list[list[int]], device) -> tuple[int, list | None]:
    """``(n_prefix, key_values)``: the shared prefix's length and its per-layer ``(keys, values)``
    (batch 1); ``(0, None)`` when there is no prefix or the model returns no usable cache (the
    ``adapters`` library's models keep theirs elsewhere), so callers encode whole prompts."""
    n_prefix = shared_prefix_length(prompt_ids)
    if not n_prefix:
        return 0, None
    prefix = torch.tensor([prompt_ids[0][:n_prefix]], device=device)
    cache = model(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values
    layers = [(layer.keys, layer.values) for layer in getattr(cache, "layers", ())]
    if not layers or any(k is None or k.shape[-2] != n_prefix for k, _ in layers):
        return 0, None
    return n_prefix, layers


def expanded_cache(prefix_kv, batch: int):
    """A fresh cache holding the prefix for ``batch`` rows as broadcast views: the first update
    concatenates the new keys onto them, which is the only copy made."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer, (keys, values) in enumerate(prefix_kv):
        cache.update(keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1), layer)
    return cache


def virtual_tokens(model) -> int:
    """Positions a peft prompt-learning model puts before the input (soft prompt or key/value prefix)
    in every layer's cache; 0 for other models."""
    config = getattr(model, "active_peft_config", None)
    if not getattr(config, "is_prompt_learning", False):
        return 0
    return int(config.num_virtual_tokens)


def kv_cache_works(model) -> bool:
    """Whether a forward pass fills the KV cache it returns: after 2 tokens every layer holds 2 positions,
    plus the virtual tokens of a soft prompt or prefix (peft caches them with the input, and cached
    generation continues from them: prompt tuning, P-Tuning, MPT, prefix tuning, P-Tuning v2). The
    ``adapters`` library's attention (1.3.0 with transformers 4.57) leaves it empty, so cached generation
    would continue from nothing: such models generate with ``use_cache=False`` (every step re-reads the
    whole sequence)."""
    ids = torch.tensor([[1, 2]], device=next(model.parameters()).device)
    cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
    layers = getattr(cache, "layers", None)
    if layers is None:  # a legacy tuple cache or another Cache type: trust it
        return cache is not None
    expected = 2 + virtual_tokens(model)
    return bool(layers) and all(
        layer.keys is not None and layer.keys.shape[-2] == expected for layer in layers
    )
