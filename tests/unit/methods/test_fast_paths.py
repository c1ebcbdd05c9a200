"""The speed-ups change nothing but speed: answer-tail batches give the loss and gradients of plain
right-padded batches; merged adapters predict like unmerged ones and are unmerged afterwards;
``trainer.eval_every`` and ``dataset.val_fraction=0`` mean what the docs say."""

from __future__ import annotations

import random

import pytest
import torch

from bench.data.collate import AnswerTailCollator, make_collator, supports_answer_tail
from bench.methods import apply_method, merged_for_inference
from bench.models import load_model_and_tokenizer


def _features(n_rows: int, vocab: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n_rows):
        prompt = [rng.randrange(3, vocab) for _ in range(rng.randrange(4, 20))]
        answer = [rng.randrange(3, vocab) for _ in range(rng.randrange(1, 4))] + [0]
        rows.append(
            {
                "input_ids": prompt + answer,
                "attention_mask": [1] * (len(prompt) + len(answer)),
                "labels": [-100] * len(prompt) + answer,
            }
        )
    return rows


def _tuned(compose, cache_dir, method: str):
    cfg = compose("model=tiny-random", f"method={method}")
    model, tok = load_model_and_tokenizer(cfg.model, cache_dir)
    torch.manual_seed(0)
    model = apply_method(model, cfg.method)
    with torch.no_grad():  # a non-trivial adapter, so the comparison means something
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.3)
    model.eval()  # no dropout: two passes must be comparable (gradients still flow)
    return cfg, model, tok


def _loss_and_grads(model, batch):
    model.zero_grad()
    out = model(**batch)
    out.loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])
    return out, grads


@pytest.mark.parametrize("method", ["lora", "ia3", "bottleneck"])
def test_answer_tail_batches_give_the_same_loss_and_gradients(compose, cache_dir, method):
    from transformers import DataCollatorForSeq2Seq

    _, model, tok = _tuned(compose, cache_dir, method)
    assert supports_answer_tail(model)
    feats = _features(6, len(tok))
    tail = AnswerTailCollator(tok.pad_token_id)(feats)
    tok.padding_side = "right"
    plain = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100, return_tensors="pt")(feats)
    tail_out, tail_grads = _loss_and_grads(model, tail)
    plain_out, plain_grads = _loss_and_grads(model, plain)
    # logits only for the answer window: longest answer (3 + EOS) + the position predicting it
    assert tail_out.logits.shape[1] == tail["logits_to_keep"] <= 5 < plain_out.logits.shape[1]
    assert torch.isfinite(tail_grads).all() and tail_grads.abs().sum() > 0
    assert tail_out.loss.item() == pytest.approx(plain_out.loss.item(), abs=1e-5)
    assert torch.allclose(tail_grads, plain_grads, atol=1e-5, rtol=1e-4)


def test_soft_prompts_keep_right_padded_batches(compose, cache_dir):
    from transformers import DataCollatorForSeq2Seq

    _, model, tok = _tuned(compose, cache_dir, "prompt_tuning")
    assert not supports_answer_tail(model)  # peft drops position_ids for soft prompts
    assert isinstance(make_collator(model, tok), DataCollatorForSeq2Seq)


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_merged_adapter_predicts_like_the_unmerged_one_and_is_unmerged_after(compose, cache_dir, method):
    _, model, tok = _tuned(compose, cache_dir, method)
    ids = torch.tensor([_features(1, len(tok), seed=3)[0]["input_ids"]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
        with merged_for_inference(model):
            merged_layers = [m for m in model.modules() if getattr(m, "merged", False)]
            during = model(input_ids=ids).logits
        after = model(input_ids=ids).logits
    assert merged_layers, "nothing was merged"
    assert not any(getattr(m, "merged", False) for m in model.modules())
    assert torch.allclose(during, before, atol=1e-4)
    assert torch.allclose(after, before, atol=1e-5)  # unmerging subtracts again: float rounding only


def test_unmergeable_methods_are_left_alone(compose, cache_dir):
    _, model, tok = _tuned(compose, cache_dir, "prompt_tuning")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
        with merged_for_inference(model):
            during = model(input_ids=ids).logits
    assert torch.equal(before, during)


def test_eval_every_is_a_fraction_of_the_run_or_a_step_count(compose):
    from bench.training import steps_between_evals, total_steps

    cfg = compose("model=tiny-random", "trainer.batch_size=8", "trainer.num_train_epochs=1")
    assert total_steps(cfg, 2000) == 250
    assert steps_between_evals(compose("model=tiny-random", "trainer.eval_every=1.0"), 2000) == 250
    assert steps_between_evals(compose("model=tiny-random", "trainer.eval_every=0.05"), 2000) == 13
    assert steps_between_evals(compose("model=tiny-random", "trainer.eval_every=40"), 2000) == 40
    assert steps_between_evals(compose("model=tiny-random", "trainer.max_steps=12"), 2000) == 1
    grad_acc = compose("model=tiny-random", "trainer.gradient_accumulation_steps=4", "trainer.eval_every=1.0")
    assert total_steps(grad_acc, 2000) == steps_between_evals(grad_acc, 2000) == 62


def test_length_grouped_order_depends_on_seed_and_epoch_only():
    from bench.length_sampler import EpochSeededLengthGroupedSampler

    lengths = [random.Random(i).randrange(5, 60) for i in range(400)]

    def order(seed: int, epoch: int, draws_before: int = 0) -> list[int]:
        sampler = EpochSeededLengthGroupedSampler(8, lengths, seed)
        for _ in range(draws_before):  # what a run did before (or the global RNG did) must not matter
            torch.rand(3)
            list(sampler)
        sampler.set_epoch(epoch)
        return list(sampler)

    first = order(1, 0)
    assert sorted(first) == list(range(400))
    assert first == order(1, 0, draws_before=2)  # a resumed run sees the same batches
    assert first != order(1, 1) and first != order(2, 0)
    # batches are length-grouped: far less padding than a random order
    padded = lambda idx: sum(max(lengths[i] for i in idx[s : s + 8]) * 8 for s in range(0, 400, 8))  # noqa: E731
    assert padded(first) < 0.8 * padded(random.Random(0).sample(range(400), 400))


def test_base_flops_are_counted_once_per_architecture(compose, cache_dir, tmp_path, monkeypatch):
    from bench import measure

    cfg = compose("model=tiny-random")
    model, _ = load_model_and_tokenizer(cfg.model, cache_dir)
    counted = measure.forward_flops(model, 64)
    assert measure.base_forward_flops(model, 64, tmp_path) == counted > 0

    def no_probe(*args, **kwargs):
        raise AssertionError("probe ran again")

    monkeypatch.setattr(measure, "forward_flops", no_probe)
    assert measure.base_forward_flops(model, 64, tmp_path) == counted  # from disk
    with pytest.raises(AssertionError, match="probe ran again"):
        measure.base_forward_flops(model, 128, tmp_path)  # another probe length is another count
