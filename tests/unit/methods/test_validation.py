"""Method configs: the peft:<TYPE> shorthand, option and training-knob checks, families, start-up needs."""

from __future__ import annotations

import pytest

from bench import CONF_DIR
from bench.config.choices import ShorthandError, expand_method_shorthand, unknown_choices
from bench.config.validate import validate
from bench.errors import ConfigError
from bench.methods import check_requirements


def test_shorthand_rewrites_to_the_generic_peft_config():
    args = ["method=peft:vera", "+method.options.r=256", "seed=1"]
    assert expand_method_shorthand(args) == [
        "method=peft",
        "method.peft_type=VERA",
        "method.name='peft:VERA'",
        "+method.options.r=256",
        "seed=1",
    ]
    assert expand_method_shorthand(["method=peft:PREFIX_TUNING"])[-1] == "method.family=soft_prompt"
    assert expand_method_shorthand(["method=lora"]) == ["method=lora"]
    assert unknown_choices(["method=peft:VERA"], CONF_DIR) == []


def test_shorthand_refuses_sweeps():
    with pytest.raises(ShorthandError, match="method=peft method.peft_type=A,B"):
        expand_method_shorthand(["method=peft:VERA,LOHA"])


@pytest.mark.parametrize(
    ("peft_type", "family", "option"),
    [
        ("VERA", "reparametrized", "r=256"),
        ("LOHA", "reparametrized", "r=4"),
        ("P_TUNING", "soft_prompt", "num_virtual_tokens=10"),
    ],
)
def test_any_peft_type_composes_validates_and_applies(compose, cache_dir, peft_type, family, option):
    from bench.methods import apply_method, count_parameters
    from bench.models import load_model_and_tokenizer

    extra = [f"+method.options.{option}"] if option else []
    cfg = compose("model=tiny-random", *expand_method_shorthand([f"method=peft:{peft_type}", *extra]))
    validate(cfg)
    assert (cfg.method.name, cfg.method.peft_type, cfg.method.family) == (
        f"peft:{peft_type}",
        peft_type,
        family,
    )
    model, _ = load_model_and_tokenizer(cfg.model, cache_dir)
    model = apply_method(model, cfg.method)
    assert model.peft_config["default"].peft_type == peft_type
    if option:
        key, value = option.split("=")
        assert getattr(model.peft_config["default"], key) == int(value)
    trainable, total = count_parameters(model)
    assert 0 < trainable < total


def test_unknown_peft_type_suggests_close_ones(compose):
    cfg = compose("model=tiny-random", *expand_method_shorthand(["method=peft:VERRA"]))
    with pytest.raises(ConfigError, match=r"VERRA.*is not a peft type. Did you mean VERA"):
        validate(cfg)


def test_family_must_match_prompt_learning(compose):
    cfg = compose("model=tiny-random", "method=prefix_tuning", "method.family=reparametrized")
    with pytest.raises(ConfigError, match="method.family must be soft_prompt"):
        validate(cfg)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            ["method=bottleneck", "+method.options.reduction_factr=8"],
            r"reduction_factr is not a field of adapters",
        ),
        (["method=bottleneck", "method.adapter_config=double_seq"], r"Unknown adapters config 'double_seq'"),
        (
            ["method=svft", "+method.options.off_diagonal=1"],
            r"off_diagonal is not a field of plugin config SVFTConfig.*Did you mean off_diag",
        ),
        (["method=svft", "method.options.off_diag=-1"], r"off_diag must be >= 0"),
        (
            ["method=lora", "+method.training.loraplus_ratio=4"],
            r"loraplus_ratio is not a field of the method training",
        ),
        (["method=ia3", "+method.training.loraplus_lr_ratio=4"], r"LoRA\+ .* needs a LoRA method"),
        (["method=bitfit", "method.peft_type=SVFT"], r"plugin 'bitfit' .* registers peft type BITFIT"),
    ],
)
def test_bad_method_settings_fail_before_loading(compose, overrides, match):
    cfg = compose("model=tiny-random", *overrides)
    with pytest.raises(ConfigError, match=match):
        validate(cfg)


def test_qlora_and_galore_validate_as_configs_but_need_their_machine(compose):
    import importlib.util

    import torch

    qlora = compose("model=tiny-random", "method=qlora")
    validate(qlora)  # the config itself is fine anywhere
    if not torch.cuda.is_available():
        from bench.methods.requirements import bitsandbytes_on_cpu

        if importlib.util.find_spec("bitsandbytes") is None:
            with pytest.raises(ConfigError, match="needs the package 'bitsandbytes'"):
                check_requirements(qlora.method)
        elif not bitsandbytes_on_cpu():
            with pytest.raises(ConfigError, match="needs a CUDA GPU or bitsandbytes' CPU backend"):
                check_requirements(qlora.method)
        else:
            check_requirements(qlora.method)  # bitsandbytes' CPU backend runs QLoRA here
    galore = compose("model=tiny-random", "method=galore")
    validate(galore)
    if importlib.util.find_spec("galore_torch") is None:
        with pytest.raises(ConfigError, match=r"needs the package 'galore-torch'.*pip install galore-torch"):
            check_requirements(galore.method)


def test_prompt_tuning_init_among_the_first_vocabulary_ids(compose, cache_dir):
    """method.init_vocab_limit (PEFT-Factory's prompt-tuning init, the paper preset's 5,000): every virtual
    token starts as the embedding of one of the first N token ids."""
    import torch

    from bench.methods import apply_method
    from bench.models import load_model_and_tokenizer

    cfg = compose("model=tiny-random", "method=peft_bench/prompt_tuning", "method.init_vocab_limit=10")
    assert compose("method=peft_bench/prompt_tuning").method.init_vocab_limit == 5000
    validate(cfg)
    base, _ = load_model_and_tokenizer(cfg.model, cache_dir)
    torch.manual_seed(0)
    model = apply_method(base, cfg.method)
    words = model.word_embeddings.weight.detach()
    prompt = model.prompt_encoder["default"].embedding.weight.detach()
    equal = (prompt[:, None, :] == words[None, :, :]).all(dim=-1)  # (virtual tokens, vocabulary)
    assert equal.any(dim=1).all()  # each virtual token is a word embedding exactly
    ids = {int(i) for i in equal.float().argmax(dim=1)}
    assert max(ids) < 10 and len(ids) > 1


def test_init_vocab_limit_is_for_sampled_prompt_tuning_only(compose):
    cfg = compose("model=tiny-random", "method=lora", "method.init_vocab_limit=5000")
    with pytest.raises(ConfigError, match="init_vocab_limit applies to prompt tuning"):
        validate(cfg)
