"""One process per run folder: an exclusive ``flock`` on ``<run>/.lock`` while a process works in it.

The lock file names its holder (pid, host, start time) so a second launch of the same run can say whom
it waits for. The kernel releases the lock when the holder exits, however it dies (SIGKILL included), so
a stale lock from a killed process is simply taken over: its file's text is only a description. flock
works across processes of one host and on most cluster file systems (Lustre, GPFS, NFSv4 with lock
support); where the file system ignores it, runs are not protected.
"""

from __future__ import annotations

import fcntl
import logging
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


def holder(run_dir: str | os.PathLike) -> str:
    """The description the current (or last) holder wrote into the lock file."""
    try:
        return (Path(run_dir) / LOCK_FILE).read_text().strip() or "unknown process"
    except OSError:
        return "unknown process"


@contextmanager
def run_lock(run_dir: str | os.PathLike, poll_s: float = 1.0, report_every_s: float = 60.0) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block; if another live process holds it, wait and say who."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        waited, last_report = 0.0, None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if last_report is None or waited - last_report >= report_every_s:
                    log.info("%s is locked by %s: waiting for it to finish", run_dir.name, holder(run_dir))
                    last_report = waited
                time.sleep(poll_s)
                waited += poll_s
        if waited:
            log.info("%s: lock taken after waiting %.0f s", run_dir.name, waited)
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        os.pwrite(fd, f"pid {os.getpid()} on {platform.node()} since {stamp}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
