"""Peak memory of a block of work: CUDA max allocated on GPU; on CPU, peak RSS growth (sampled)."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path


class PeakMemory:
    """``with PeakMemory(device) as pm: ...`` then ``pm.peak_bytes``.

    On CUDA: ``torch.cuda.max_memory_allocated`` over the block (reset at entry).
    On CPU: the highest resident set size seen while the block ran, minus the RSS at entry, sampled
    every ``interval`` seconds by a background thread (so spikes shorter than that can be missed).
    """

    def __init__(self, device: str = "cpu", interval: float = 0.02) -> None:
        self.device = device
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return self
        import psutil

        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss
        self._max = self._base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.peak_bytes = int(torch.cuda.max_memory_allocated())
            return
        self._stop.set()
        self._thread.join()
        self._max = max(self._max, self._proc.memory_info().rss)
        self.peak_bytes = int(self._max - self._base)


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
        with torch.inference_mode(), inference_autocast(model), FlopCounterMode(display=False) as counter:
            model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def base_forward_flops(model, probe_tokens: int, cache_dir: str | Path) -> int:
    """:func:`forward_flops` of a base model, remembered on disk: the count depends only on the
    architecture (``model.config``) and the probe length, so every later run on the same model (a sweep's
    other methods, datasets and seeds) skips the probe pass (~1.3 s for SmolLM2 on 2 CPU cores)."""
    import hashlib

    from bench.results import write_json_atomic

    arch = model.config.to_json_string(use_diff=False)
    key = hashlib.sha256(f"{arch}|{probe_tokens}".encode()).hexdigest()[:16]
    path = Path(cache_dir).expanduser() / "flops" / f"{key}.json"
    if path.exists():
        return int(json.loads(path.read_text())["flops"])
    flops = forward_flops(model, probe_tokens)
    write_json_atomic(
        path, {"flops": flops, "probe_tokens": probe_tokens, "model_type": model.config.model_type}
    )
    return flops
