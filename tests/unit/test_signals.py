"""A process forked from a run (a DataLoader worker) leaves SLURM's preemption signal to the run."""

from __future__ import annotations

import multiprocessing
import signal

from bench.signals import main_process_handles_preemption


def _report(queue) -> None:
    queue.put(signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN)


def test_a_forked_worker_ignores_usr2_that_the_main_process_handles():
    previous = signal.signal(signal.SIGUSR2, lambda *_: None)  # as submitit installs its handler
    try:
        main_process_handles_preemption()
        context = multiprocessing.get_context("fork")  # how DataLoader starts its workers on Linux
        queue = context.Queue()
        worker = context.Process(target=_report, args=(queue,))
        worker.start()
        ignored = queue.get(timeout=30)
        worker.join(timeout=30)
        assert ignored, "the forked worker kept the parent's USR2 handler"
        assert callable(signal.getsignal(signal.SIGUSR2))  # the main process still handles it
    finally:
        signal.signal(signal.SIGUSR2, previous)
