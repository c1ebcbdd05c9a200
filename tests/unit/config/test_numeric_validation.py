"""Every numeric knob is checked before any weights load, and all problems are reported at once."""

from __future__ import annotations

import pytest

from bench.config.validate import numeric_problems, validate
from bench.errors import ConfigError

BASE = ("model=tiny-random", "hardware=cpu")


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("trainer.batch_size=0", "trainer.batch_size=0 must be at least 1"),
        ("trainer.eval_batch_size=0", "trainer.eval_batch_size=0 must be at least 1"),
        ("trainer.gradient_accumulation_steps=0", "trainer.gradient_accumulation_steps=0 must be at least 1"),
        ("eval.batch_size=0", "eval.batch_size=0 must be at least 1"),
        ("trainer.learning_rate=-0.001", "trainer.learning_rate=-0.001 must be positive"),
        ("method.learning_rate=0", "method.learning_rate=0.0 must be positive"),
        ("trainer.warmup_ratio=1.5", "trainer.warmup_ratio=1.5 must be in [0, 1]"),
        ("trainer.logging_steps=0", "trainer.logging_steps=0 must be at least 1"),
        ("trainer.eval_every=-1", "trainer.eval_every=-1.0: a fraction"),
        ("trainer.eval_every=50", "trainer.eval_every=50.0 steps is more than trainer.max_steps=10"),
        ("model.name=../../x", "model.name='../../x' names the model's cache folder"),
    ],
)
def test_each_bad_value_is_named_with_its_fix(compose, override, named):
    cfg = compose(*BASE, "trainer.max_steps=10", override)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert named in str(err.value)


def test_all_problems_at_once(compose):
    cfg = compose(*BASE, "trainer.batch_size=0", "trainer.gradient_accumulation_steps=0", "eval.batch_size=0")
    assert numeric_problems(cfg) == [
        "trainer.batch_size=0 must be at least 1.",
        "trainer.gradient_accumulation_steps=0 must be at least 1.",
        "eval.batch_size=0 must be at least 1.",
    ]


def test_the_defaults_and_every_model_pass(compose):
    for model in ("tiny-random", "smollm2-135m-instruct", "llama-3.2-1b-instruct", "local"):
        assert numeric_problems(compose(f"model={model}")) == []
    assert numeric_problems(compose("model=tiny-random", "method=none")) == []  # learning_rate 0: no training


def test_a_bad_value_fails_before_any_weights_load(compose, tmp_path, monkeypatch):
    """Today eval.batch_size=0 failed only after training; now the run stops before loading the model."""
    import bench.models
    from bench.run import run_experiment

    def no_load(*args, **kwargs):
        raise AssertionError("weights loaded")

    monkeypatch.setattr(bench.models, "load_model_and_tokenizer", no_load)
    record = run_experiment(
        compose(*BASE, "eval.batch_size=0", "trainer.gradient_accumulation_steps=0"), tmp_path
    )
    assert record["status"] == "failed"
    assert "eval.batch_size=0" in record["error"] and "gradient_accumulation_steps=0" in record["error"]


def test_eval_every_beyond_an_epoch_sized_run_fails_before_training(compose, tmp_path, monkeypatch):
    """60 rows cap, 10% held out: 54 train rows, batch 8 -> 7 steps in one epoch; eval_every=20 steps."""
    import bench.training
    from bench.run import run_experiment

    monkeypatch.setattr(bench.training, "train", lambda *a, **k: pytest.fail("trained"))
    cfg = compose(
        *BASE, "dataset.max_train_samples=60", "dataset.max_eval_samples=8", "trainer.eval_every=20"
    )
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "failed"
    assert "trainer.eval_every=20.0 steps is more than the run's 7 steps" in record["error"]
