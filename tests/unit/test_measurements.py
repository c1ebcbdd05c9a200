"""Measurements that mean one thing (issue 15, part 4): FLOP caches keyed by device and dtype, CUDA peak
memory as max allocated, max reserved and device memory, the GPU and every method package in result.json,
one GPU per run. The CUDA paths run here with torch.cuda's functions monkeypatched."""

from __future__ import annotations

import pytest
import torch

from bench import measure, results


def test_base_flops_cache_is_keyed_by_dtype(compose, cache_dir, tmp_path, monkeypatch):
    """A count made in fp32 is not reused for the same architecture in bf16 (or on another device)."""
    from bench.models import load_model_and_tokenizer

    cfg = compose("model=tiny-random")
    fp32, _ = load_model_and_tokenizer(cfg.model, cache_dir)
    bf16, _ = load_model_and_tokenizer(cfg.model, cache_dir, "bf16")
    assert measure.flops_cache_key(fp32, 64) != measure.flops_cache_key(bf16, 64)
    assert measure.flops_cache_key(fp32, 64).endswith("|64|cpu|float32")
    assert measure.flops_cache_key(bf16, 64).endswith("|64|cpu|bfloat16")
    calls = []
    monkeypatch.setattr(measure, "forward_flops", lambda model, probe: calls.append(model.dtype) or 100)
    measure.base_forward_flops(fp32, 64, tmp_path)
    measure.base_forward_flops(bf16, 64, tmp_path)
    measure.base_forward_flops(bf16, 64, tmp_path)  # from disk
    assert calls == [torch.float32, torch.bfloat16]
    files = sorted((tmp_path / "flops").glob("*.json"))
    assert len(files) == 2
    assert {results.read_result(f)["dtype"] for f in files} == {"float32", "bfloat16"}
    assert {results.read_result(f)["device"] for f in files} == {"cpu"}


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda as a GPU with 3 GiB allocated at peak, 4 GiB reserved, device memory rising to 5 GiB."""
    gib = 2**30
    used = iter([4 * gib, 5 * gib])
    last = {"value": 4 * gib}

    def device_memory_used(device=None):
        last["value"] = next(used, last["value"])
        return last["value"]

    for name, fn in {
        "synchronize": lambda *a: None,
        "reset_peak_memory_stats": lambda *a: None,
        "max_memory_allocated": lambda *a: 3 * gib,
        "max_memory_reserved": lambda *a: 4 * gib,
        "device_memory_used": device_memory_used,
        "is_available": lambda: True,
        "device_count": lambda: 2,
        "current_device": lambda: 0,
    }.items():
        monkeypatch.setattr(torch.cuda, name, fn, raising=False)
    return gib


def test_cuda_peak_memory_records_allocated_reserved_and_device(fake_cuda):
    gib = fake_cuda
    with measure.PeakMemory("cuda", interval=0.001) as peak:
        pass
    assert peak.peak_bytes == 3 * gib  # torch's tensors
    assert peak.reserved_bytes == 4 * gib  # plus the caching allocator's reserve
    assert peak.device_bytes == 5 * gib  # NVML's view: the paper's quantity, the highest sample
    assert peak.cuda_record("peak_memory") == {
        "peak_memory_reserved_bytes": 4 * gib,
        "peak_memory_device_bytes": 5 * gib,
    }


def test_device_memory_falls_back_to_mem_get_info(fake_cuda, monkeypatch):
    gib = fake_cuda
    monkeypatch.delattr(torch.cuda, "device_memory_used")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (10 * gib, 16 * gib))
    assert measure._device_memory_used() == 6 * gib


def test_cpu_peak_memory_has_no_cuda_fields():
    with measure.PeakMemory("cpu") as peak:
        block = bytearray(64 * 2**20)
    del block
    assert peak.peak_bytes > 0
    assert peak.cuda_record("peak_eval_memory") == {
        "peak_eval_memory_reserved_bytes": None,
        "peak_eval_memory_device_bytes": None,
    }


def test_device_info_names_the_gpu_and_versions(fake_cuda, monkeypatch):
    class Props:
        name = "NVIDIA H100 80GB HBM3"
        total_memory = 80 * fake_cuda

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Props)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)
    monkeypatch.setattr(results, "_driver_version", lambda: "570.86.15")
    info = results.device_info("cuda")
    assert info == {
        "device": "cuda",
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "gpu_memory_bytes": 80 * fake_cuda,
        "gpus_visible": 2,
        "cuda_version": "12.8",
        "cudnn_version": 91000,
        "driver_version": "570.86.15",
    }


def test_device_info_on_cpu_has_no_gpu():
    info = results.device_info("cpu")
    assert info["device"] == "cpu"
    assert info["gpu_name"] is info["cuda_version"] is info["driver_version"] is None


def test_package_versions_name_every_method_package():
    versions = results.package_versions()
    for name in ("torch", "transformers", "peft", "adapters", "bitsandbytes", "galore-torch"):
        assert name in versions  # None where not installed
    assert versions["adapters"]  # installed with the project


def test_one_gpu_per_run(compose, tmp_path):
    """Several visible GPUs: Trainer would wrap the model in nn.DataParallel; one_gpu keeps one."""
    from bench.training import one_gpu, training_arguments

    args = training_arguments(compose("model=tiny-random"), tmp_path, 10)
    assert args.n_gpu == 0  # hardware=cpu
    args._n_gpu = 4  # as on a 4-GPU node without CUDA_VISIBLE_DEVICES
    assert one_gpu(args).n_gpu == 1
