"""bench.allocator: with glibc's thresholds fixed, memory a step frees is reused, not faulted in again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.allocator import keep_freed_memory

# One "training step": 8 activations of 12 MB written, then all freed at once. Prints the minor page
# faults per step of steps 3-8 (the heap has its working size by then). "returned": glibc's starting
# thresholds (128 KiB), held fixed, so every freed block goes back to the kernel: the control that
# shows the count sees re-faulting. glibc's own moving thresholds land between the two, run by run.
_STEPS = """
import ctypes, json, resource, sys
import torch
torch.set_num_threads(1)
if sys.argv[1] == "keep":
    from bench.allocator import keep_freed_memory
    assert keep_freed_memory()
else:
    mallopt = ctypes.CDLL("libc.so.6").mallopt
    assert mallopt(-1, 128 * 1024) == 1 and mallopt(-3, 128 * 1024) == 1  # M_TRIM_ / M_MMAP_THRESHOLD
def step():
    acts = [torch.empty(3_000_000).fill_(1.0) for _ in range(8)]
    del acts
for _ in range(2):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(6):
    step()
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 6))
"""

PAGES_PER_STEP = 8 * 3_000_000 * 4 // 4096
ROOT = Path(__file__).resolve().parents[2]


def _faults_per_step(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _STEPS, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc: Linux only")


@glibc_only
def test_freed_activations_are_reused_without_page_faults():
    returned = _faults_per_step("returned")
    assert returned > 0.9 * PAGES_PER_STEP, f"control: {returned:.0f} faults per step, expected all pages"
    kept = _faults_per_step("keep")
    assert kept < 0.05 * PAGES_PER_STEP, f"{kept:.0f} faults per step of {PAGES_PER_STEP} pages"


@glibc_only
def test_can_be_called_again():
    assert keep_freed_memory() and keep_freed_memory()
