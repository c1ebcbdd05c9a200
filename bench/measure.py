"""Peak memory of a block of work (CUDA: max allocated, max reserved, device memory; CPU: peak RSS growth)
and FLOP counts of a forward pass."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path


class PeakMemory:
    """``with PeakMemory(device) as pm: ...`` then ``pm.peak_bytes`` (and the CUDA fields).

    On CUDA: ``peak_bytes`` is ``torch.cuda.max_memory_allocated`` over the block (reset at entry: the
    tensors torch holds), ``reserved_bytes`` ``max_memory_reserved`` (plus the allocator's cache) and
    ``device_bytes`` the highest device memory in use seen while the block ran, as NVML reports it
    (``torch.cuda.device_memory_used``, else ``mem_get_info``'s total - free: CUDA context, allocator
    cache, other processes included), sampled every ``interval`` seconds: the quantity PEFT-Bench reports
    (wandb's ``system.gpu.0.memoryAllocatedBytes``, ../shared/PAPERS.md).
    On CPU: the highest resident set size seen while the block ran, minus the RSS at entry, sampled
    every ``interval`` seconds by a background thread (so spikes shorter than that can be missed); the
    CUDA fields stay None.
    """

    def __init__(self, device: str = "cpu", interval: float = 0.02) -> None:
        self.device = device
        self.interval = interval
        self.peak_bytes = 0
        self.reserved_bytes: int | None = None
        self.device_bytes: int | None = None
        self._stop = threading.Event()

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._read = _device_memory_used
        else:
            import psutil

            self._proc = psutil.Process()
            self._read = lambda: self._proc.memory_info().rss
        self._base = self._read()
        self._max = self._base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._read())
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._max = max(self._max, self._read())
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.peak_bytes = int(torch.cuda.max_memory_allocated())
            self.reserved_bytes = int(torch.cuda.max_memory_reserved())
            self.device_bytes = int(self._max)
            return
        self.peak_bytes = int(self._max - self._base)

    def cuda_record(self, prefix: str = "peak_memory") -> dict[str, int | None]:
        """The CUDA-only fields for result.json (None on CPU), beside ``<prefix>_bytes``."""
        return {f"{prefix}_reserved_bytes": self.reserved_bytes, f"{prefix}_device_bytes": self.device_bytes}


def _device_memory_used() -> int:
    """Device memory in use on the current GPU (all processes), by NVML where torch exposes it."""
    import torch

    try:
        return int(torch.cuda.device_memory_used())
    except (AttributeError, RuntimeError, ModuleNotFoundError):  # no NVML binding: the driver's view
        free, total = torch.cuda.mem_get_info()
        return int(total - free)


@contextmanager
def timer():
    """``with timer() as t: ...`` then ``t()`` is the elapsed seconds."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def forward_flops(model, probe_tokens: int = 512) -> int:
    """FLOPs of one forward pass over a fixed probe (batch 1, ``probe_tokens`` tokens), by torch's counter.

    Counts what ``torch.utils.flop_counter`` knows (matmuls, attention); the probe's token ids are
    fixed so the same model always gives the same count. Soft prompts count with their virtual tokens.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench.models import inference_autocast

    device = next(model.parameters()).device
    vocab = model.get_input_embeddings().num_embeddings
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, vocab, (1, probe_tokens), generator=generator).to(device)
    was_training = model.training
    model.eval()
    try:
        # no_grad, not inference_mode: bitsandbytes' 4-bit layers (QLoRA) cannot run on inference tensors
        with torch.no_grad(), inference_autocast(model), FlopCounterMode(display=False) as counter:
            model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def base_forward_flops(model, probe_tokens: int, cache_dir: str | Path) -> int:
    """:func:`forward_flops` of a base model, remembered on disk: the count depends on the architecture
    (``model.config``), the probe length, the device type and the weights' dtype, so every later run on
    the same model and hardware (a sweep's other methods, datasets and seeds) skips the probe pass (~1.3 s
    for SmolLM2 on 2 CPU cores). Device and dtype are in the key because torch's counter sees different
    kernels: SDPA attention is counted on CUDA and not on CPU (a CPU-counted base reused on a GPU inflated
    Llama-3-8B's delta by ~1.4e11)."""
    import hashlib

    from bench.results import write_json_atomic

    key = hashlib.sha256(flops_cache_key(model, probe_tokens).encode()).hexdigest()[:16]
    path = Path(cache_dir).expanduser() / "flops" / f"{key}.json"
    if path.exists():
        return int(json.loads(path.read_text())["flops"])
    flops = forward_flops(model, probe_tokens)
    device, dtype = _device_and_dtype(model)
    write_json_atomic(
        path,
        {
            "flops": flops,
            "probe_tokens": probe_tokens,
            "model_type": model.config.model_type,
            "device": device,
            "dtype": dtype,
        },
    )
    return flops


def _device_and_dtype(model) -> tuple[str, str]:
    from bench.models import autocast_dtype

    param = next(model.parameters())
    dtype = autocast_dtype(model) or param.dtype
    return param.device.type, str(dtype).removeprefix("torch.")


def flops_cache_key(model, probe_tokens: int) -> str:
    """What the base FLOP count depends on: architecture, probe length, device type, weights dtype."""
    device, dtype = _device_and_dtype(model)
    return f"{model.config.to_json_string(use_diff=False)}|{probe_tokens}|{device}|{dtype}"
