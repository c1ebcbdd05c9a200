"""Soft-prompt models generate with the KV cache (issue 15, part 3).

peft's prompt-learning models put their virtual tokens (a soft prompt, or key/value prefixes in every
layer) into the cache with the input. ``kv_cache_works`` used to reject such a cache, so prompt tuning,
P-Tuning and MPT re-encoded the whole sequence at every new token, and prefix tuning / P-Tuning v2 failed
at the second token. Cached generation must give exactly the tokens of a step-by-step greedy loop that
re-reads the whole sequence (no cache) every step.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TINY

SOFT_PROMPTS = ["prompt_tuning", "p_tuning", "p_tuning_v2", "prefix_tuning", "mpt"]
MAX_NEW = 6


@pytest.fixture(scope="module")
def prompts_and_tokenizer(compose, cache_dir):
    from bench.models import load_model_and_tokenizer

    _, tok = load_model_and_tokenizer(compose(*TINY).model, cache_dir)
    texts = ["route this ticket", "route that ticket", "hello", "my invoice is wrong twice over", "help"]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts], tok


def _trained_ish(compose, cache_dir, method: str):
    """The method on tiny-random with its trainable parameters moved off their initialisation."""
    from bench.methods import apply_method
    from bench.models import load_model_and_tokenizer

    cfg = compose(*TINY, f"method={method}", "method.options.num_virtual_tokens=8")
    base, _ = load_model_and_tokenizer(cfg.model, cache_dir)
    torch.manual_seed(0)
    model = apply_method(base, cfg.method)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * param.std().clamp(min=0.02))
    return model.eval()


@torch.inference_mode()
def _uncached_greedy(model, tok, prompt: list[int]) -> str:
    """Greedy decoding the slow way: the whole sequence through the model at every step, no cache."""
    ids = list(prompt)
    new: list[int] = []
    for _ in range(MAX_NEW):
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
        token = int(logits.argmax())
        new.append(token)
        ids.append(token)
        if token == tok.eos_token_id:
            break
    return tok.decode(new, skip_special_tokens=True)


@pytest.mark.parametrize("method", SOFT_PROMPTS)
def test_cached_generation_equals_uncached(compose, cache_dir, prompts_and_tokenizer, method):
    from bench.evaluation.generate import drops_position_ids, generate_texts
    from bench.evaluation.prefix import kv_cache_works, virtual_tokens

    prompts, tok = prompts_and_tokenizer
    model = _trained_ish(compose, cache_dir, method)
    assert virtual_tokens(model) == 8
    assert kv_cache_works(model)  # the cache holds the 8 virtual positions + the 2 probe tokens
    texts = generate_texts(
        model,
        tok,
        prompts,
        max_new_tokens=MAX_NEW,
        batch_size=4,
        same_length_batches=drops_position_ids(model),  # as bench.evaluation.predict batches them
    )
    expected = [_uncached_greedy(model, tok, p) for p in prompts]
    assert texts == expected
    assert len(set(expected)) > 1  # the prompts lead to different continuations: not a constant output


def test_models_without_virtual_tokens_count_none(compose, cache_dir):
    from bench.evaluation.prefix import kv_cache_works, virtual_tokens
    from bench.methods import apply_method
    from bench.models import load_model_and_tokenizer

    cfg = compose(*TINY, "method=lora")
    model = apply_method(load_model_and_tokenizer(cfg.model, cache_dir)[0], cfg.method)
    assert virtual_tokens(model) == 0
    assert kv_cache_works(model)
