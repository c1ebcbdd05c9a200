"""Generate mode is batch-size invariant; score mode matches a hand computation; soft prompts are active."""

from __future__ import annotations

import pytest
import torch

from bench.data.pipeline import prepare_data
from bench.evaluation.generate import generate_texts
from bench.evaluation.prefix import shared_prefix_length
from bench.evaluation.score import rank_labels, score_candidates
from bench.methods import apply_method
from bench.models import load_model_and_tokenizer


def _perturbed(compose, cache_dir, method: str, seed: int = 1):
    """tiny-random with ``method`` applied and its parameters randomised, so outputs vary by input."""
    cfg = compose("model=tiny-random", f"method={method}", "dataset.max_eval_samples=40")
    model, tok = load_model_and_tokenizer(cfg.model, cache_dir)
    data = prepare_data(cfg, tok)
    torch.manual_seed(seed)  # before the method, so its initialisation is fixed too
    model = apply_method(model, cfg.method)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.5)
    return cfg, model, tok, data


@pytest.mark.parametrize(
    ("method", "same_length"), [("lora", False), ("prompt_tuning", True), ("bottleneck", False)]
)
def test_generation_is_identical_at_batch_size_1_and_8(compose, cache_dir, method, same_length):
    _, model, tok, data = _perturbed(compose, cache_dir, method)
    kwargs = {"max_new_tokens": 6, "same_length_batches": same_length}
    one = generate_texts(model, tok, data.test_prompt_ids, batch_size=1, **kwargs)
    eight = generate_texts(model, tok, data.test_prompt_ids, batch_size=8, **kwargs)
    assert one == eight
    if method == "lora":
        assert len(set(one)) > 5  # the outputs vary, so equality means something


def test_generation_from_the_shared_prefix_matches_plain_generate(compose, cache_dir):
    _, model, tok, data = _perturbed(compose, cache_dir, "lora")
    prompts = data.test_prompt_ids[:10]
    assert shared_prefix_length(prompts) > 10  # chat template + instruction: the prefix-cache path
    ours = generate_texts(model, tok, prompts, max_new_tokens=6, batch_size=4)
    plain = []
    with torch.no_grad():
        for prompt in prompts:  # one prompt at a time, no cache, no padding: the reference
            out = model.generate(
                input_ids=torch.tensor([prompt]),
                attention_mask=torch.ones((1, len(prompt)), dtype=torch.long),
                max_new_tokens=6,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            plain.append(tok.decode(out[0, len(prompt) :], skip_special_tokens=True))
    assert ours == plain
    assert len(set(ours)) > 3


def test_adapters_library_models_generate_what_greedy_decoding_gives(compose, cache_dir):
    """Their attention leaves the KV cache empty (adapters 1.3.0 + transformers 4.57): generation must
    not continue from an empty cache."""
    from bench.evaluation.prefix import kv_cache_works

    _, model, tok, data = _perturbed(compose, cache_dir, "bottleneck")
    assert not kv_cache_works(model)  # if this fails, the library was fixed: drop the fallback
    prompts = data.test_prompt_ids[:4]
    ours = generate_texts(model, tok, prompts, max_new_tokens=4, batch_size=4)
    expected = []
    with torch.no_grad():
        for prompt in prompts:  # greedy by hand: the whole sequence every step, no cache
            seq = list(prompt)
            for _ in range(4):
                nxt = int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
                seq.append(nxt)
                if nxt == tok.eos_token_id:
                    break
            expected.append(tok.decode(seq[len(prompt) :], skip_special_tokens=True))
    assert ours == expected


def _loglik_by_hand(model, prompt: list[int], answer: list[int]) -> float:
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -ids.shape[1] :]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return sum(float(logprobs[len(prompt) - 1 + k, tok]) for k, tok in enumerate(answer))


@pytest.mark.parametrize("method", ["lora", "prompt_tuning", "bottleneck"])
def test_score_mode_matches_unbatched_loglikelihood(compose, cache_dir, method):
    cfg, model, tok, data = _perturbed(compose, cache_dir, method)
    labels = list(cfg.dataset.label_names)
    prompts = data.test_prompt_ids[:6]
    assert shared_prefix_length(prompts) > 10  # the chat template + instruction: the cached-prefix path
    shared = method == "lora"  # the KV-cache path; soft prompts and adapters-library models: the plain one
    scores = score_candidates(model, tok, prompts, labels, batch_size=5, shared_prompt=shared)
    for i, prompt in enumerate(prompts):
        for j, label in enumerate(labels):
            answer = tok(label, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            assert scores[i][j] == pytest.approx(_loglik_by_hand(model, prompt, answer), abs=1e-4)
    one_by_one = score_candidates(model, tok, prompts, labels, batch_size=1, shared_prompt=shared)
    for row, expected in zip(one_by_one, scores, strict=True):
        assert row == pytest.approx(expected, abs=1e-4)


def test_rank_labels_picks_the_highest_and_breaks_ties_to_the_first():
    assert rank_labels([[-3.0, -1.0], [-2.0, -2.0]], ["a", "b"]) == ["b", "a"]


def test_shared_prefix_length():
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert shared_prefix_length([[1, 2], [1, 2]]) == 1  # one token of each prompt stays outside
    assert shared_prefix_length([[7], [7, 8]]) == 0
    assert shared_prefix_length([]) == 0


def test_answer_budget(compose, cache_dir):
    from bench.evaluation.predict import max_new_tokens_for

    cfg = compose("model=tiny-random", "dataset=math/gsm8k")
    _, tok = load_model_and_tokenizer(cfg.model, cache_dir)
    assert cfg.dataset.max_new_tokens and max_new_tokens_for(cfg, tok) == cfg.dataset.max_new_tokens
    assert (
        max_new_tokens_for(compose("model=tiny-random", "dataset=math/gsm8k", "eval.max_new_tokens=9"), tok)
        == 9
    )
    sst2 = compose("model=tiny-random", "dataset=glue/sst2")
    form = "The correct answer is ({}).".format
    longest = max(len(tok(form(w), add_special_tokens=False)["input_ids"]) for w in sst2.dataset.label_names)
    assert max_new_tokens_for(sst2, tok) == longest + 1
    # letter tasks get room for "Answer: C" (they got 2 tokens, so a chatty "Answer:" parsed as A)
    mmlu = compose("model=tiny-random", "dataset=others/mmlu")
    assert max_new_tokens_for(mmlu, tok) >= len(tok("Answer: C", add_special_tokens=False)["input_ids"]) + 1


def test_unknown_preprocessor_fails_at_start_up(compose):
    from bench.config.validate import validate
    from bench.registry import RegistryError

    with pytest.raises(RegistryError, match="Unknown preprocessor 'gsm8k_answr'"):
        validate(compose("model=tiny-random", "dataset=math/gsm8k", "dataset.preprocess=gsm8k_answr"))


def test_soft_prompt_models_are_recognised_by_what_they_are(compose, cache_dir):
    from bench.evaluation.generate import drops_position_ids

    _, prompt, _, _ = _perturbed(compose, cache_dir, "prompt_tuning")
    _, lora, _, _ = _perturbed(compose, cache_dir, "lora")
    base, _ = load_model_and_tokenizer(compose("model=tiny-random").model, cache_dir)
    assert drops_position_ids(prompt) and not drops_position_ids(lora) and not drops_position_ids(base)
