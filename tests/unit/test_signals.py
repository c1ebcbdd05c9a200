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


class _Slow:
    """Items that take a while, so the worker is alive when the signal comes."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> int:
        import time

        time.sleep(0.1)
        return i


def _epoch_with_a_sigterm_from_outside() -> list[int]:
    """One epoch of a 1-worker DataLoader whose worker gets SIGTERM from another process (as SLURM sends
    it to every process of the step after a requeue) after the first batch."""
    import subprocess

    import torch.utils.data

    iterator = iter(torch.utils.data.DataLoader(_Slow(), batch_size=1, num_workers=1))
    items = [int(next(iterator))]
    subprocess.run(["kill", "-TERM", str(iterator._workers[0].pid)], check=True)  # not the parent's
    items += [int(batch) for batch in iterator]
    return items


def test_a_dataloader_worker_ignores_the_sigterm_its_main_process_bypasses():
    """submitit bypasses SIGTERM in the job's process; PyTorch's worker handler died of it, and the run
    failed ("DataLoader worker ... is killed by signal: Terminated") instead of being requeued."""
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # submitit's bypass handler
    try:
        main_process_handles_preemption()
        assert _epoch_with_a_sigterm_from_outside() == list(range(6))
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_without_a_python_handler_a_worker_still_dies_of_sigterm():
    import pytest

    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    main_process_handles_preemption()
    with pytest.raises(RuntimeError, match="DataLoader worker"):  # killed by signal, or exited
        _epoch_with_a_sigterm_from_outside()
