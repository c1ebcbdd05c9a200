"""The real thing: SmolLM2-135M-Instruct + LoRA on real SST-2 rows beats the base model (slow, ~3.5 min)."""

from __future__ import annotations

import pytest

from bench.run import run_experiment


@pytest.mark.slow
def test_lora_raises_macro_f1_over_base_on_sst2(compose, tmp_path, shared_mirror):
    common = (
        "model=smollm2-135m-instruct",
        "dataset=glue/sst2",
        f"data.mirror={shared_mirror}",
        "dataset.max_train_samples=256",
        "dataset.max_eval_samples=200",
    )
    base = run_experiment(compose(*common, "method=none"), tmp_path / "base")
    # validation (and a checkpoint) every 25% of the 29 steps instead of 5%: the same training, less overhead
    lora = run_experiment(
        compose(*common, "method=lora", "trainer.num_train_epochs=1", "trainer.eval_every=0.25"),
        tmp_path / "lora",
    )
    assert base["status"] == "success", base.get("traceback")
    assert lora["status"] == "success", lora.get("traceback")
    assert base["n_test"] == lora["n_test"] == 200 and lora["n_train"] + lora["n_val"] == 256
    print(
        f"\nSST-2 macro-F1 base {base['metrics']['f1_macro']:.3f} -> LoRA {lora['metrics']['f1_macro']:.3f} "
        f"(invalid {base['metrics']['invalid_rate']:.2f} -> {lora['metrics']['invalid_rate']:.2f}; "
        f"train {lora['train_runtime_s']:.0f} s)"
    )
    assert lora["metrics"]["f1_macro"] > base["metrics"]["f1_macro"]
