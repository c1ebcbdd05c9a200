from bench.config.run_key import run_key


def test_run_key_is_deterministic_and_readable(compose):
    a = run_key(compose("model=tiny-random", "method=lora", "seed=3"))
    b = run_key(compose("model=tiny-random", "method=lora", "seed=3"))
    assert a == b
    assert a.startswith("tiny-random__lora__demo-ticket_routing__seed3__")


def test_any_hyperparameter_changes_the_key(compose):
    base = run_key(compose("model=tiny-random"))
    assert run_key(compose("model=tiny-random", "method.options.r=8")) != base
    assert run_key(compose("model=tiny-random", "trainer.learning_rate=0.1")) != base
    assert run_key(compose("model=tiny-random", "seed=1")) != base


def test_locations_do_not_change_the_key(compose):
    base = run_key(compose("model=tiny-random"))
    assert run_key(compose("model=tiny-random", "paths.results_dir=/elsewhere", "data.mirror=/m")) == base


def test_precision_and_device_are_identity(compose):
    """A bf16 GPU relaunch must not be skipped on top of an fp32 CPU result."""
    base = run_key(compose("model=tiny-random"))
    assert run_key(compose("model=tiny-random", "hardware.precision=bf16")) != base
    assert run_key(compose("model=tiny-random", "hardware=gpu")) != base
    assert run_key(compose("model=tiny-random", "hardware.device=cuda")) != base


def test_the_declared_non_identity_keys_do_not_change_the_key(compose):
    base = run_key(compose("model=tiny-random"))
    same = (
        "hardware.num_threads=3",
        "hardware.dataloader_num_workers=2",
        "hardware.keep_freed_memory=false",
        "eval.batch_size=7",
        "save_adapter=false",
        "rerun=true",
        "logger=wandb",
        "paths.cache_dir=/other",
        "model.architecture.hidden_size=123",
    )
    for override in same:
        assert run_key(compose("model=tiny-random", override)) == base, override


def test_every_declared_key_exists_in_the_schema(compose):
    """A renamed knob must not silently fall back into the identity."""
    from omegaconf import OmegaConf

    from bench.config.run_key import NOT_IDENTITY

    cfg = compose("model=tiny-random")
    for key in NOT_IDENTITY:
        if key != "hydra":
            assert OmegaConf.select(cfg, key, default="<absent>") != "<absent>", key


def test_identity_settings_drop_nested_keys_only():
    from bench.config.run_key import identity_settings

    cfg = {"hardware": {"device": "cpu", "num_threads": 4}, "eval": {"batch_size": 8, "mode": "score"}}
    assert identity_settings(cfg) == {"hardware": {"device": "cpu"}, "eval": {"mode": "score"}}


def test_search_settings_keep_old_keys_at_their_neutral_value(compose):
    """learning_rate_scale 1.0, eval.validation false, eval.test true: the key of a run made before these
    settings existed (they are dropped from the identity), so a tuned run at scale 1 is the default run."""
    from omegaconf import OmegaConf

    from bench.config.run_key import config_hash

    cfg = compose("model=tiny-random")
    old = OmegaConf.to_container(cfg, resolve=True)
    del old["trainer"]["learning_rate_scale"]
    for key in ("validation", "max_validation_samples", "test"):
        del old["eval"][key]
    old.pop("search")
    assert config_hash(old) == config_hash(cfg)
    base = run_key(cfg)
    assert run_key(compose("model=tiny-random", "trainer.learning_rate_scale=1.0")) == base
    assert run_key(compose("model=tiny-random", "search=lr")) == base  # a search's description only
    for override in ("trainer.learning_rate_scale=3", "eval.validation=true", "eval.test=false"):
        assert run_key(compose("model=tiny-random", override)) != base, override
