"""Full runs on tiny-random: result.json, predictions, the saved adapter, failures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from bench import PROJECT_DIR
from bench.run import run_experiment
from tests.conftest import TINY

REQUIRED = {
    "status",
    "error",
    "run_key",
    "model",
    "method",
    "dataset",
    "seed",
    "metrics",
    "trainable_params",
    "total_params",
    "peak_memory_bytes",
    "train_runtime_s",
    "eval_runtime_s",
    "train_samples_per_s",
    "eval_samples_per_s",
    "config",
    "versions",
    "git_commit",
    "headline_metric",
    "headline_value",
}
TRAIN = ("trainer.max_steps=12", "trainer.learning_rate=0.01", "trainer.eval_every=0.25")


@pytest.fixture(scope="module")
def lora_run(compose, tmp_path_factory):
    cfg = compose(*TINY, "method=lora", *TRAIN)
    run_dir = tmp_path_factory.mktemp("lora")
    return cfg, run_dir, run_experiment(cfg, run_dir)


def test_lora_run_writes_a_valid_result(lora_run):
    cfg, run_dir, record = lora_run
    assert record["status"] == "success", record.get("traceback")
    on_disk = json.loads((run_dir / "result.json").read_text())
    assert REQUIRED <= set(on_disk)
    assert on_disk["status"] == "success" and on_disk["error"] is None
    assert (on_disk["model"], on_disk["method"], on_disk["dataset"]) == (
        "tiny-random",
        "lora",
        "demo/ticket_routing",
    )
    assert set(on_disk["metrics"]) == {"accuracy", "f1_macro", "invalid_rate"}
    assert on_disk["headline_metric"] == "f1_macro"
    assert on_disk["versions"]["torch"].startswith("2.13") and on_disk["versions"]["peft"]
    assert 0 < on_disk["trainable_params"] < on_disk["total_params"]
    assert (
        on_disk["train_steps"] == 12 and on_disk["train_runtime_s"] > 0 and on_disk["peak_memory_bytes"] >= 0
    )
    assert (on_disk["n_train"], on_disk["n_val"], on_disk["n_test"]) == (54, 6, 16)
    assert on_disk["config"]["trainer"]["max_steps"] == 12
    # the demo task has a target on every row and short rows (the default limit is the paper's 2048)
    assert on_disk["dropped_rows"] == {"train": 0, "test": 0}
    assert on_disk["truncated_rows"] == {"train": 0, "val": 0, "test": 0}


def test_lora_trainable_params_match_lora_shapes(lora_run):
    cfg, _, record = lora_run
    t = cfg.model.tiny
    kv = t.hidden_size // t.num_attention_heads * t.num_key_value_heads
    r = cfg.method.options.r
    per_layer = r * (t.hidden_size + kv) * 2 + r * (t.intermediate_size + t.hidden_size)  # k, v, down
    assert record["trainable_params"] == per_layer * t.num_hidden_layers


def test_validation_loss_every_quarter_and_best_checkpoint_kept(lora_run):
    _, run_dir, record = lora_run
    history = json.loads((run_dir / "log_history.json").read_text())
    evals = [h for h in history if "eval_loss" in h]
    assert [h["step"] for h in evals] == [3, 6, 9, 12]
    assert record["best_val_loss"] == pytest.approx(min(h["eval_loss"] for h in evals))
    train_losses = [h["loss"] for h in history if "loss" in h]
    assert train_losses and evals[-1]["eval_loss"] < evals[0]["eval_loss"]  # it learns
    assert not (run_dir / "checkpoints").exists()  # the best one lives on as the adapter


def test_predictions_file(lora_run):
    _, run_dir, record = lora_run
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == record["n_test"] == 16
    assert set(rows[0]) == {"id", "prompt", "generated", "reference", "parsed", "valid"}
    assert all(r["valid"] == (r["parsed"] is not None) for r in rows)
    accuracy = sum(r["parsed"] == r["reference"] for r in rows) / len(rows)
    assert record["metrics"]["accuracy"] == pytest.approx(accuracy)


def test_saved_adapter_reloads_to_the_evaluated_model(lora_run, cache_dir):
    from peft import PeftModel

    from bench.data.pipeline import prepare_data
    from bench.evaluation.generate import generate_texts
    from bench.models import load_model_and_tokenizer

    cfg, run_dir, record = lora_run
    base, tok = load_model_and_tokenizer(cfg.model, cache_dir)
    model = PeftModel.from_pretrained(base, run_dir / "adapter")
    data = prepare_data(cfg, tok)
    texts = generate_texts(
        model, tok, data.test_prompt_ids, max_new_tokens=record["max_new_tokens"], batch_size=4
    )
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert texts == [r["generated"] for r in rows]


@pytest.mark.parametrize("method", ["ia3", "prompt_tuning"])
def test_other_methods_train_only_their_parameters(compose, tmp_path, method):
    cfg = compose(*TINY, f"method={method}", "trainer.max_steps=4", "trainer.eval_every=0.5")
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "success", record.get("traceback")
    assert 0 < record["trainable_params"] < record["total_params"]
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    adapter = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == cfg.method.peft_type


def test_method_none_evaluates_the_base_model(compose, tmp_path):
    record = run_experiment(compose(*TINY, "method=none"), tmp_path)
    assert record["status"] == "success", record.get("traceback")
    assert record["trainable_params"] == 0 and record["train_runtime_s"] == 0
    assert record["n_train"] == 0 and record["n_test"] == 16
    assert not (tmp_path / "adapter").exists()


def test_same_seed_same_losses_and_predictions_other_seed_differs(compose, tmp_path):
    def run(name, seed):
        run_experiment(
            compose(*TINY, "trainer.max_steps=3", "trainer.eval_every=1.0", f"seed={seed}"), tmp_path / name
        )
        history = json.loads((tmp_path / name / "log_history.json").read_text())
        losses = [h["eval_loss"] for h in history if "eval_loss" in h]
        predictions = [
            json.loads(line)["generated"] for line in (tmp_path / name / "predictions.jsonl").open()
        ]
        return losses, predictions

    first, again, other = run("a", 1), run("b", 1), run("c", 2)
    assert first == again
    assert first[0] != other[0]  # another seed: another hold-out, data order and initialisation


def test_bad_label_fails_with_status_and_row(compose, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"text": "a", "label": "billing"}\n' * 4)
    (data / "validation.jsonl").write_text(
        '{"text": "a", "label": "billing"}\n{"text": "b", "label": "refunds"}\n'
    )
    cfg = compose("model=tiny-random", f"dataset.data_dir={data}")
    record = run_experiment(cfg, tmp_path / "run")
    assert record["status"] == "failed"
    assert "split 'validation', row 1: label 'refunds' is not in the label set" in record["error"]
    on_disk = json.loads((tmp_path / "run" / "result.json").read_text())
    assert on_disk["status"] == "failed" and "Traceback" in on_disk["traceback"]


def _cli(*args, cwd=PROJECT_DIR):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_cli_run_writes_hydra_dir_and_result(tmp_path, cache_dir):
    out = _cli(
        *TINY,
        "trainer.max_steps=2",
        "trainer.eval_every=1.0",
        f"paths.results_dir={tmp_path}",
        f"paths.cache_dir={cache_dir}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (run_dir / ".hydra" / "config.yaml").exists() and (run_dir / ".hydra" / "overrides.yaml").exists()
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "success" and record["run_key"] == run_dir.name


def test_cli_failed_run_exits_nonzero_with_result(tmp_path, cache_dir):
    out = _cli(
        "model=tiny-random",
        "data.mirror=/nonexistent/mirror",
        "dataset=glue/sst2",
        f"paths.results_dir={tmp_path}",
        f"paths.cache_dir={cache_dir}",
    )
    assert out.returncode != 0
    assert "/nonexistent/mirror/nyu-mll/glue/sst2/validation.parquet" in out.stderr
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "failed" and "mirror file not found" in record["error"]


def test_sst2_from_mirror_on_tiny(compose, tmp_path, shared_mirror):
    cfg = compose(
        *TINY,
        "dataset=glue/sst2",
        f"data.mirror={shared_mirror}",
        "trainer.max_steps=2",
        "trainer.eval_every=1.0",
    )
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "success", record.get("traceback")
    assert record["n_test"] == 16 and record["n_train"] + record["n_val"] == 60


def test_unavailable_gpu_is_a_clear_error(compose, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    record = run_experiment(compose(*TINY, "hardware=gpu"), tmp_path)
    assert record["status"] == "failed" and "sees no CUDA GPU" in record["error"]


def test_trained_soft_prompt_changes_generation(compose, tmp_path):
    """Soft prompts must be active when generating (peft issue #2123): predictions differ from the base's."""
    base = run_experiment(compose(*TINY, "method=none"), tmp_path / "base")
    tuned = run_experiment(
        compose(
            *TINY,
            "method=prompt_tuning",
            "trainer.max_steps=30",
            "trainer.learning_rate=0.3",
            "trainer.eval_every=0.5",
        ),
        tmp_path / "pt",
    )
    assert tuned["status"] == base["status"] == "success", tuned.get("traceback")

    def generated(run):
        return [json.loads(line)["generated"] for line in (tmp_path / run / "predictions.jsonl").open()]

    assert generated("pt") != generated("base")


def test_no_validation_split_trains_on_every_row_and_evaluates_the_last_weights(compose, tmp_path):
    cfg = compose(
        *TINY, "method=lora", "trainer.max_steps=6", "dataset.val_fraction=0", "trainer.eval_every=0.5"
    )
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "success", record.get("traceback")
    assert record["n_val"] == 0 and record["n_train"] == cfg.dataset.max_train_samples
    assert record["best_checkpoint"] is None and record["best_val_loss"] is None
    history = json.loads((tmp_path / "log_history.json").read_text())
    assert not any("eval_loss" in entry for entry in history)
    assert record["train_steps"] == 6


@pytest.mark.parametrize("method", ["bottleneck", "prompt_tuning"])
def test_score_mode_runs_for_models_without_the_fast_path(compose, tmp_path, method):
    cfg = compose(
        *TINY, f"method={method}", "trainer.max_steps=2", "trainer.eval_every=1.0", "eval.mode=score"
    )
    record = run_experiment(cfg, tmp_path)
    assert record["status"] == "success", record.get("traceback")
    assert record["metrics"]["invalid_rate"] == 0.0 and record["eval_mode"] == "score"
