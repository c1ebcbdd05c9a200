"""Keep freed memory inside the process (Linux, glibc), so training does not fault it in again.

PyTorch's CPU tensors come from ``malloc``. glibc returns free memory at the top of its heap to the
kernel once more than ``M_TRIM_THRESHOLD`` is free there, and serves blocks above ``M_MMAP_THRESHOLD``
with a fresh ``mmap``; both thresholds move with the allocation pattern. A training step frees all its
activations at once, so in some processes glibc hands them back after every step and the next step
page-faults them in again: measured on Work A (34M Llama, 250 steps, 2 cores) 1.6-3.2 million minor
faults and 5-9 s of kernel time in such runs against 0.23 million and 2.3 s in the others, with 3-5%
lower samples/s; in the peer benchmark, both runs measured right after the peer's were of the slow kind
(benchmarks/RESULTS.md). Fixed thresholds (no trimming below 1 GiB of free heap; the heap for every
block up to 32 MiB) made all 6 runs since the fast kind, with peak RSS in the range of the runs without
them (0.91-1.08 GiB): what is kept is memory the next step needs again.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters (malloc.h)
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of free heap
TOP_PAD = 64 << 20  # grow the heap in 64 MiB steps (untouched pages cost no memory)
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value: blocks up to 32 MiB come from the heap


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds for this process; False where the C library is not glibc (macOS,
    musl) and nothing was changed. Safe to call more than once."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl's mallopt ignores these parameters
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = ((M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD), (M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return all(mallopt(param, value) == 1 for param, value in settings)
