"""The planner (``python -m bench.plan``) and the meta models it counts on: no weights, no GPU."""

from __future__ import annotations

import json

import pytest

from bench.results import write_json_atomic

# PEFT-Bench Table 1 (../shared/PAPERS.md): trainable parameters on Llama-3-8B-Instruct.
PAPER_COUNTS = {
    "ia3": 196_608,
    "prompt_tuning": 409_600,
    "prefix_tuning": 34_177_536,
    "p_tuning": 53_130_752,
    "lora": 14_680_064,
    "ln_tuning": 266_240,
}
# PEFT-Factory's per-method learning rates for the grid (PAPERS.md, "What PEFT-Factory's configs ran").
PAPER_LR = {
    "ia3": 5e-5,
    "prompt_tuning": 3e-2,
    "prefix_tuning": 1e-5,
    "p_tuning": 1e-3,
    "lora": 5e-5,
    "ln_tuning": 5e-5,
}
TINY_GRID = ("model=tiny-random", "dataset=demo/ticket_routing")


@pytest.fixture(scope="module")
def plan_of(cache_dir):
    """``plan_of(*overrides)`` -> bench.plan.Plan for the grid those overrides sweep (A100, 30%)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench import CONF_DIR
    from bench.config.run_key import register_resolver
    from bench.config.schema import register_configs
    from bench.plan import GPUS, make_plan

    register_configs()
    register_resolver()

    def _plan(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return make_plan([f"paths.cache_dir={cache_dir}", *overrides], GPUS["a100-40gb"], 0.3)

    return _plan


def test_meta_models_have_the_hub_parameter_counts(compose):
    """Each model YAML's architecture block builds the hub model's exact parameter count (config.json)."""
    from bench.meta_model import build_meta_model
    from bench.methods import count_parameters

    expected = {
        "llama-3-8b-instruct": 8_030_261_248,  # PAPERS.md
        "llama-3.2-1b-instruct": 1_235_814_400,
        "qwen2.5-0.5b-instruct": 494_032_768,
        "smollm2-135m-instruct": 134_515_008,
    }
    for name, total in expected.items():
        model = build_meta_model(compose(f"model={name}").model)
        assert next(model.parameters()).device.type == "meta"
        assert count_parameters(model) == (total, total), name


def test_a_model_without_architecture_is_a_clear_error(compose):
    from bench.errors import ConfigError
    from bench.meta_model import build_meta_model

    with pytest.raises(ConfigError, match="no model.architecture.*architecture:"):
        build_meta_model(compose("model=local", "model.hub_id=/some/folder").model)


def test_meta_flops_equal_the_count_on_real_weights(compose, cache_dir):
    """The meta count is bench.measure.forward_flops (what a run records) on the loaded model, attention
    included. On meta tensors attention runs as matmuls, as eager attention does; torch's counter also
    counts the CUDA SDPA kernels, but not the CPU one, so a CPU run's record leaves attention out."""
    from bench.measure import forward_flops
    from bench.meta_model import build_meta_model, meta_forward_flops
    from bench.methods import apply_method
    from bench.models import load_model_and_tokenizer

    cfg = compose("model=tiny-random", "method=prompt_tuning")
    real, _ = load_model_and_tokenizer(cfg.model, cache_dir, attn_implementation="eager")
    meta = build_meta_model(cfg.model)
    assert meta_forward_flops(meta, 64) == forward_flops(real, 64)
    tuned_real, tuned_meta = apply_method(real, cfg.method), apply_method(meta, cfg.method)
    assert meta_forward_flops(tuned_meta, 64) == forward_flops(tuned_real, 64)
    sdpa, _ = load_model_and_tokenizer(cfg.model, cache_dir, attn_implementation="sdpa")
    assert forward_flops(sdpa, 64) < meta_forward_flops(meta, 64)  # the CPU SDPA kernel is not counted


def test_llama3_8b_flops_by_hand(compose):
    """torch's count on Llama-3-8B: 2 x linear weights x tokens, 4 s^2 d L for attention (every position
    pair: causality is not discounted) and the rotary frequencies' outer product, 2 (head_dim / 2) s."""
    from bench.meta_model import build_meta_model, meta_forward_flops

    d, kv, inter, layers, vocab = 4096, 1024, 14336, 32, 128_256
    linear = layers * (2 * d * d + 2 * d * kv + 3 * d * inter) + d * vocab  # + the LM head

    def by_hand(s: int) -> int:
        return 2 * linear * s + 4 * s * s * d * layers + 2 * 64 * s

    model = build_meta_model(compose("model=llama-3-8b-instruct").model)
    assert meta_forward_flops(model, 512) == by_hand(512) == 7_822_209_253_376
    assert meta_forward_flops(model, 612) - by_hand(512) == by_hand(612) - by_hand(512)  # Prompt Tuning's


def test_peft_bench_preset_expands_to_810_cells(plan_of):
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench import CONF_DIR
    from bench.plan import expand_grid

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        _, cells = expand_grid(["experiment=peft_bench"])
    assert len(cells) == 27 * 6 * 5 == 810
    assert {c[0] for c in cells} == {f"seed={s}" for s in (42, 123, 456, 789, 101112)}


def test_six_peft_bench_methods_count_as_table1(plan_of):
    """The preset's six methods on Llama-3-8B: Table 1's trainable counts and the resolved settings."""
    plan = plan_of("experiment=peft_bench", "dataset=glue/sst2", "seed=42")
    assert not plan.errors
    cells = {c["method"]: c for c in plan.cells}
    assert {m: c["trainable_params"] for m, c in cells.items()} == PAPER_COUNTS
    assert {m: c["learning_rate"] for m, c in cells.items()} == PAPER_LR
    for cell in cells.values():
        assert (cell["num_train_epochs"], cell["batch_size"], cell["max_seq_length"]) == (20, 4, 2048)
        assert cell["model"] == "llama-3-8b-instruct"
    tflops = {m: c["extra_inference_flops"] / 1e12 for m, c in cells.items()}
    assert tflops["prompt_tuning"] == pytest.approx(1.5599, abs=1e-4)  # 100 virtual tokens (by hand above)
    assert tflops["ln_tuning"] == tflops["ia3"] == 0.0  # element-wise only: torch's counter has none
    # scaled to the paper's base count (8.38 TFLOPs), the virtual tokens cost what Table 3 says
    base = plan.counts[("llama-3-8b-instruct", "lora")].base_flops / 1e12
    for method, paper in (("prompt_tuning", 1.67), ("p_tuning", 1.68), ("prefix_tuning", 0.01)):
        assert tflops[method] * 8.38 / base == pytest.approx(paper, abs=0.005)


def test_gpu_hours_by_hand(compose):
    """2 epochs of 90 rows x 50 tokens at 2 MFLOPs a token (frozen base: x 2, plus 2 x 1,000 trainable
    per token), 2 validation passes over 10 rows and one over 10 test rows, fp32 (TF32 peaks), 30%."""
    from bench.plan import GPUS, Counts, DataSize, estimate

    cfg = compose(*TINY_GRID, "method=lora", "trainer.num_train_epochs=2", "trainer.batch_size=4",
                  "trainer.eval_every=0.5", "dataset.val_fraction=0.1")  # fmt: skip
    counts = Counts(
        trainable_params=1_000, total_params=100_000, base_flops=512 * 10**6, tuned_flops=1024 * 10**6
    )
    size = DataSize(train_rows=100, test_rows=10, tokens_per_row=50.0, longest_row_tokens=80, source="table4")
    flops = 2 * 90 * 50 * (2e6 * 2 + 2 * 1_000) + (2 * 10 + 10) * 50 * 2e6
    for gpu, peak in (("a100-40gb", 156e12), ("h100", 495e12)):
        est = estimate(cfg, counts, size, GPUS[gpu], 0.3)
        assert est["est_train_tokens"] == 9_000
        assert est["est_gpu_hours"] == pytest.approx(flops / (peak * 0.3) / 3600, rel=1e-12)


@pytest.mark.parametrize(
    ("grid", "job"),
    [
        # groups that edit only their own node: configs spliced from one composition
        ((*TINY_GRID, "method=lora,ia3", "seed=1,2"), lambda c: (*TINY_GRID, f"method={c['method']}")),
        # the preset edits dataset.prompt_style: a spliced dataset node (ia3 x cola) would lose it
        (
            (
                "experiment=peft_bench",
                "method=peft_bench/ia3,peft_bench/lora",
                "dataset=glue/sst2,glue/cola",
                "seed=1",
            ),
            lambda c: (
                "experiment=peft_bench",
                f"method=peft_bench/{c['method']}",
                f"dataset={c['dataset']}",
            ),
        ),
    ],
)
def test_run_keys_equal_hydra_s_and_a_run_s(plan_of, compose, grid, job):
    """Each cell's run key is the one `python -m bench` computes for that job."""
    from bench.config.run_key import run_key

    plan = plan_of(*grid)
    assert len(plan.cells) == 4
    for cell in plan.cells:
        assert cell["run_key"] == run_key(compose(*job(cell), f"seed={cell['seed']}"))


def test_status_reads_each_run_folder(plan_of, tmp_path):
    grid = (*TINY_GRID, "method=lora,ia3,ln_tuning", f"paths.results_dir={tmp_path}")
    first = plan_of(*grid)
    done, failed, new = (c["run_key"] for c in first.cells)
    write_json_atomic(tmp_path / done / "result.json", {"status": "success", "run_key": done})
    write_json_atomic(tmp_path / failed / "result.json", {"status": "failed", "error": "boom"})
    again = plan_of(*grid)
    assert [(c["run_key"], c["status"]) for c in again.cells] == [
        (done, "done"),
        (failed, "failed"),
        (new, "new"),
    ]


def test_every_invalid_cell_is_reported_at_once(cache_dir, capsys):
    """IA3 rejects LoRA's `r` and GSM8K cannot be scored by label words: 3 of 4 cells, one report, exit 2."""
    from bench.plan import main

    code = main(
        [
            "model=tiny-random",
            "method=lora,ia3",
            "dataset=demo/ticket_routing,math/gsm8k",
            "eval.mode=score",
            "++method.options.r=8",
            f"paths.cache_dir={cache_dir}",
            "--format",
            "json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 2
    assert [json.loads(line)["method"] for line in out.splitlines()] == ["lora"]  # the valid cell
    assert "3 cell(s) are invalid" in err
    assert "ia3 / demo/ticket_routing / seed 42: ConfigError: method 'ia3': method.options.r is not" in err
    assert "tiny-random / lora / math/gsm8k" in err and "eval.mode=score" in err


def test_json_cells_have_the_documented_keys(cache_dir, capsys):
    from bench.plan import JSON_KEYS, main

    assert main([*TINY_GRID, "method=lora", f"paths.cache_dir={cache_dir}", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    (cell,) = [json.loads(line) for line in out.splitlines()]
    assert set(JSON_KEYS) <= set(cell)
    assert cell["tokens_source"] == "files"  # the demo task ships with the project
    assert "cells: 1 (new 1)" in err and "GPU-hours" in err


def test_memory_estimate_by_hand(plan_of):
    """Llama-3-8B LoRA on SST-2 without its data: Table 4's rows, 60 tokens a row, longest 3 x 60."""
    plan = plan_of("experiment=peft_bench", "method=peft_bench/lora", "dataset=glue/sst2", "seed=42")
    (cell,) = plan.cells
    assert cell["tokens_source"] == "table4"
    trainable, total = 14_680_064, 8_030_261_248 + 14_680_064
    weights = (total - trainable) * 2 + trainable * 16  # bf16 frozen; fp32 weight, grad, 2 AdamW moments
    activations = 4 * 180 * 32 * (7 * 4096 + 2 * 1024 + 4 * 14336) * 2
    logits = 4 * 8 * 128_256 * 4 * 2
    assert cell["est_peak_memory_bytes"] == weights + activations + logits + 2**30
    n_train = 67_349 - round(67_349 * 0.1)
    assert cell["est_train_tokens"] == 20 * n_train * 60


def test_mirror_sizes_replace_table4(plan_of, shared_mirror):
    plan = plan_of(*TINY_GRID[:1], "dataset=glue/sst2", f"data.mirror={shared_mirror}")
    (cell,) = plan.cells
    assert cell["tokens_source"] == "mirror"
    n_train = 67_349 - round(67_349 * 0.1)  # the mirror's train split has Table 4's rows
    per_row = cell["est_train_tokens"] / n_train
    assert 20 < per_row < 100  # SST-2 sentences with the instruction and template


@pytest.mark.slow  # ~50-80 s on 2 cores: Hydra composes the preset's 135 distinct combinations
def test_peft_bench_plan_prints_810_cells_as_the_papers(cache_dir, capsys):
    from bench.plan import main

    assert main(["experiment=peft_bench", f"paths.cache_dir={cache_dir}", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    cells = [json.loads(line) for line in out.splitlines()]
    assert len(cells) == 810
    assert len({c["run_key"] for c in cells}) == 810
    for cell in cells:
        assert cell["trainable_params"] == PAPER_COUNTS[cell["method"]]
        assert cell["learning_rate"] == PAPER_LR[cell["method"]]
    assert "beside PEFT-Bench Table 3" in err
    hours = sum(c["est_gpu_hours"] for c in cells)  # README: ~9,400 A100-hours at 30%, 75 cells over 40 GiB
    assert 8_000 < hours < 11_000
    assert sum(c["oom_risk"] for c in cells) == 75
