"""plugins/bitfit and plugins/svft: start equal to the base, train only their own tensors, merge exactly."""

from __future__ import annotations

import pytest
import torch

from bench.methods import apply_method
from bench.models import load_model_and_tokenizer


@pytest.fixture(params=["bitfit", "svft"])
def plugin_model(request, compose, cache_dir):
    cfg = compose("model=tiny-random", f"method={request.param}")
    base, _ = load_model_and_tokenizer(cfg.model, cache_dir)
    base.eval()
    ids = torch.arange(3, 19).reshape(2, 8)
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits
    model = apply_method(base, cfg.method)
    model.eval()
    return request.param, model, ids, base_logits


def test_starts_equal_to_the_base_and_trains_only_its_tensors(plugin_model):
    name, model, ids, base_logits = plugin_model
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, base_logits, atol=1e-5, rtol=0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(f"{name}_" in n for n in trainable)
    if name == "bitfit":
        assert all(n.split(".")[-2] == "bitfit_bias" for n in trainable)
    else:
        assert {n.split(".")[-2] for n in trainable} == {"svft_values", "svft_gate"}


def test_merge_and_unload_keeps_the_tuned_outputs(plugin_model):
    name, model, ids, base_logits = plugin_model
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.5)  # a "trained" adapter
        tuned = model(input_ids=ids).logits
        assert not torch.allclose(tuned, base_logits, atol=1e-4)
        with model.disable_adapter():
            torch.testing.assert_close(model(input_ids=ids).logits, base_logits, atol=1e-5, rtol=0)
        merged = model.merge_and_unload()
        assert not any(f"{name}_" in n for n, _ in merged.named_parameters())
        torch.testing.assert_close(merged(input_ids=ids).logits, tuned, atol=1e-4, rtol=0)


def test_svft_band_width_sets_the_parameter_count(compose, cache_dir):
    from plugins.svft.layer import banded_indices

    rows, cols = banded_indices(5, 1)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True))[:5] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    assert rows.numel() == 5 + 2 * 4  # diagonal + two off-diagonals
    counts = []
    for width in (0, 3):
        cfg = compose("model=tiny-random", "method=svft", f"method.options.off_diag={width}")
        model = apply_method(load_model_and_tokenizer(cfg.model, cache_dir)[0], cfg.method)
        counts.append(sum(p.numel() for p in model.parameters() if p.requires_grad))
    t = cfg.model.tiny  # k, v: rank 32 (64 -> 32); down: rank 64 (128 -> 64); one gate each
    layers = t.num_hidden_layers
    assert counts[0] == layers * (32 + 32 + 64 + 3)
    band3 = lambda r: r + 2 * sum(r - k for k in (1, 2, 3))  # noqa: E731
    assert counts[1] == layers * (2 * band3(32) + band3(64) + 3)


def test_bitfit_linear_init_is_nn_linears_bias_init(compose, cache_dir):
    """bias_init=linear (PEFT-Factory's peft/bitfit, the paper presets): each trained bias starts as
    nn.Linear's own, U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the default starts at zero."""
    cfg = compose("model=tiny-random", "method=peft_bench/bitfit")
    assert cfg.method.options.bias_init == "linear"
    base, _ = load_model_and_tokenizer(cfg.model, cache_dir)
    torch.manual_seed(0)
    model = apply_method(base, cfg.method)
    biases = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert len(biases) == 4  # q and v of 2 layers (tiny-random)
    for name, bias in biases.items():
        fan_in = 64  # hidden size: q_proj and v_proj read the hidden state
        bound = 1 / fan_in**0.5
        assert bias.abs().max() <= bound and bias.abs().min() > 0, name
        assert bias.std() > bound / 4, name  # spread over the range, not a constant
    zero = apply_method(load_model_and_tokenizer(cfg.model, cache_dir)[0], compose("method=bitfit").method)
    assert all(float(p.abs().max()) == 0.0 for p in zero.parameters() if p.requires_grad)
