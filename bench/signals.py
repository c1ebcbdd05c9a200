"""Preemption signals belong to the run's main process.

Submitit installs Python handlers for SLURM's preemption signal (USR2) in the job's process; DataLoader
workers are forked from it and inherit those handlers, and SLURM signals every process of the job step.
Each worker then ran submitit's checkpoint-and-requeue as well (with 4 workers, five processes at once:
"A temporary saved file already exists", submitit #1617), and the job failed instead of requeueing.
"""

from __future__ import annotations

import os
import signal

PREEMPTION_SIGNALS = (signal.SIGUSR2,)
_registered = False


def _ignore_in_forked_child() -> None:
    for signum in PREEMPTION_SIGNALS:
        if callable(signal.getsignal(signum)):  # a Python handler (submitit's): the parent's job, not ours
            signal.signal(signum, signal.SIG_IGN)


def main_process_handles_preemption() -> None:
    """From now on, a process forked from this one (a DataLoader worker) ignores the preemption signals
    this process handles in Python; the main process alone checkpoints and requeues. Idempotent."""
    global _registered
    if not _registered:
        os.register_at_fork(after_in_child=_ignore_in_forked_child)
        _registered = True
