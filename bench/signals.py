"""Preemption signals belong to the run's main process.

Submitit installs Python handlers for SLURM's preemption signal (USR2) in the job's process; DataLoader
workers are forked from it and inherit those handlers, and SLURM signals every process of the job step.
Each worker then ran submitit's checkpoint-and-requeue as well (with 4 workers, five processes at once:
"A temporary saved file already exists", submitit #1617), and the job failed instead of requeueing.

The SIGTERM that follows a requeue also goes to every process of the step. Submitit's main process
bypasses it (a Python handler), but a DataLoader worker runs PyTorch's own SIGTERM handler (installed when
the worker starts), which dies unless the parent sent it; the main process's SIGCHLD check then raised
"DataLoader worker ... is killed by signal: Terminated" into the run, which was recorded as failed instead
of being requeued. Where the main process handles SIGTERM in Python, its workers ignore it too; they
still stop when the main process does (DataLoader's shutdown message, and its parent watchdog).
"""

from __future__ import annotations

import os
import signal

PREEMPTION_SIGNALS = (signal.SIGUSR2,)
_registered = False
_parent_bypasses_sigterm = False  # set in a forked child: the parent handled SIGTERM in Python


def _ignore_in_forked_child() -> None:
    global _parent_bypasses_sigterm
    for signum in PREEMPTION_SIGNALS:
        if callable(signal.getsignal(signum)):  # a Python handler (submitit's): the parent's job, not ours
            signal.signal(signum, signal.SIG_IGN)
    _parent_bypasses_sigterm = callable(signal.getsignal(signal.SIGTERM))


def _worker_sigterm_follows_the_parent() -> None:
    """Wrap PyTorch's worker signal setup (called at the start of each DataLoader worker) so that, where
    the parent bypasses SIGTERM, the worker ignores it instead of dying."""
    from torch.utils.data._utils import signal_handling

    original = signal_handling._set_worker_signal_handlers
    if getattr(original, "_bench_wrapped", False):
        return

    def set_worker_signal_handlers(*args, **kwargs):
        original(*args, **kwargs)
        if _parent_bypasses_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    set_worker_signal_handlers._bench_wrapped = True
    signal_handling._set_worker_signal_handlers = set_worker_signal_handlers


def main_process_handles_preemption() -> None:
    """From now on, a process forked from this one (a DataLoader worker) ignores the preemption signals
    this process handles in Python; the main process alone checkpoints and requeues. Idempotent."""
    global _registered
    if not _registered:
        os.register_at_fork(after_in_child=_ignore_in_forked_child)
        _worker_sigterm_follows_the_parent()
        _registered = True
