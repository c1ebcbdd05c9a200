"""bench.allocator: with glibc's thresholds fixed, memory a step frees is reused, not faulted in again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.allocator import keep_freed_memory

# One "training step": 8 activations of 12 MB written, then all freed at once. Prints the minor page
# faults per step of steps 3-8 (the heap has its working size by then).
_STEPS = """
import json, resource, sys
import torch
if sys.argv[1] == "keep":
    from bench.allocator import keep_freed_memory
    assert keep_freed_memory()
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
    default = _faults_per_step("default")
    if default < 0.15 * PAGES_PER_STEP:  # glibc 2.36 here: a third of the pages every step
        pytest.skip(f"this glibc already reuses the pattern ({default:.0f} faults per step)")
    kept = _faults_per_step("keep")
    assert kept < 0.05 * PAGES_PER_STEP, f"{kept:.0f} faults per step (defaults: {default:.0f})"


@glibc_only
def test_can_be_called_again():
    assert keep_freed_memory() and keep_freed_memory()
