"""benchmarks/gpu_check.py runs in its --cpu mode, every check in order, so it cannot rot before the day
a GPU is lent (issue 15, part 5)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from bench import PROJECT_DIR


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", PROJECT_DIR / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_cpu_mode_runs_every_check(tmp_path, cache_dir):
    gpu_check = _gpu_check()
    report = gpu_check.run_checks(cpu=True, out=tmp_path, methods=["lora"], cache_dir=cache_dir)
    assert list(report) == [name for name, _ in gpu_check.CHECKS]  # all of them, in order
    assert json.loads((tmp_path / "gpu_check.json").read_text()).keys() == report.keys()
    failed = {name: r.get("error") for name, r in report.items() if r["status"] == "failed"}
    assert not failed, failed
    for name, result in report.items():
        assert result["status"] in ("ok", "skipped"), name
        if result["status"] == "skipped":
            assert result["reason"]  # e.g. qlora without bitsandbytes: the message says what to install
    assert report["versions"]["device"]["gpu_name"] is None
    assert report["methods_bf16"]["runs"]["lora"]["trainable_dtypes"] == ["torch.float32"]
    assert report["soft_prompt_cache"]["methods"]["prompt_tuning"]["same_text"] is True
    merged = report["merged_vs_unmerged_bf16"]
    assert merged["max_abs_predicted_vs_unmerged"] == 0.0
    assert merged["weight_update_error_bf16_merge"] > 0.1  # why a bf16 base is evaluated unmerged
    shape = report["llama3_8b_shape"]
    assert [r["layers"] for r in shape["runs"]] == [2, 4]
    assert shape["runs"][1]["flops_per_step"] > shape["runs"][0]["flops_per_step"]


@pytest.mark.gpu
def test_gpu_check_on_a_gpu_passes_every_check(tmp_path, cache_dir):
    """GPU-only (skipped where torch sees no CUDA device): the full check, every method in bf16, QLoRA on
    the GPU, CUDA memory fields from a real device."""
    report = _gpu_check().run_checks(cpu=False, out=tmp_path, cache_dir=cache_dir)
    failed = {name: r.get("error") for name, r in report.items() if r["status"] == "failed"}
    assert not failed, failed
    assert report["versions"]["device"]["gpu_name"]
