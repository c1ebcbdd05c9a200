"""Progress of long loops (generation, scoring): a bar on a terminal, a log line now and then elsewhere.

On a terminal (stderr is a TTY) a tqdm bar shows rows done, rows/s and the time left, and log lines are
written above it (the bar is cleared and redrawn, not torn). Elsewhere (a SLURM log file, a pipe) a bar
would fill the file with carriage returns, so a log line with the same numbers is written every
``PEFTBENCH_PROGRESS_EVERY`` seconds (default 30). Either way one line at the end gives the total.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator

log = logging.getLogger("bench.progress")

PROGRESS_EVERY_ENV = "PEFTBENCH_PROGRESS_EVERY"
DEFAULT_EVERY_S = 30.0


def on_terminal(stream=None) -> bool:
    """Whether ``stream`` (default: the current ``sys.stderr``) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def report_every_s() -> float:
    """Seconds between progress log lines off a terminal: ``$PEFTBENCH_PROGRESS_EVERY``, else 30."""
    value = os.environ.get(PROGRESS_EVERY_ENV)
    try:
        return float(value) if value else DEFAULT_EVERY_S
    except ValueError:
        log.warning("%s=%r is not a number of seconds: using %g", PROGRESS_EVERY_ENV, value, DEFAULT_EVERY_S)
        return DEFAULT_EVERY_S


def rate_and_eta(done: int, total: int, elapsed_s: float) -> tuple[float | None, float | None]:
    """Rows per second so far, and the seconds left at that rate; ``(None, None)`` before the first row
    is done (no rate to extrapolate from)."""
    if done <= 0 or elapsed_s <= 0:
        return None, None
    rate = done / elapsed_s
    return rate, max(0, total - done) / rate


def duration(seconds: float) -> str:
    """``4.2s``, ``42s``, ``3m05s``, ``1h02m``: a duration at the precision a human waits at."""
    if seconds < 9.95:
        return f"{seconds:.1f}s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_line(label: str, done: int, total: int, elapsed_s: float, unit: str = "rows") -> str:
    """``generate: 320/1319 rows (24%), 10.7 rows/s, ETA 1m33s``."""
    rate, eta = rate_and_eta(done, total, elapsed_s)
    pct = f" ({100 * done // total}%)" if total else ""
    speed = f", {rate:.3g} {unit}/s, ETA {duration(eta)}" if rate is not None else ""
    return f"{label}: {done}/{total} {unit}{pct}{speed}"


def done_line(label: str, done: int, elapsed_s: float, unit: str = "rows") -> str:
    """``generate: 1319 rows in 2m03s (10.7 rows/s)``."""
    rate, _ = rate_and_eta(done, done, elapsed_s)
    speed = f" ({rate:.3g} {unit}/s)" if rate is not None else ""
    return f"{label}: {done} {unit} in {duration(elapsed_s)}{speed}"


class _AboveBars(logging.StreamHandler):
    """A console handler that writes through ``tqdm.write``: bars are cleared, the line is written, the
    bars are redrawn."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def log_above_bars() -> Iterator[None]:
    """While bars are shown: the root logger's terminal handlers (Hydra's console handler on a TTY) write
    through ``tqdm.write``. File handlers and handlers on a pipe are left alone; so is everything when
    no handler writes to a terminal. (tqdm's ``logging_redirect_tqdm`` would add a stderr handler where
    there is none, and takes a ``FileHandler`` whose stream is stdout for a console.)"""
    root = logging.getLogger()
    saved = list(root.handlers)
    swapped = []
    for handler in saved:
        if type(handler) is logging.StreamHandler and on_terminal(handler.stream):
            above = _AboveBars(handler.stream)
            above.setLevel(handler.level)
            above.setFormatter(handler.formatter)
            for log_filter in handler.filters:
                above.addFilter(log_filter)
            handler = above
        swapped.append(handler)
    root.handlers = swapped
    try:
        yield
    finally:
        root.handlers = saved


def quiet_library_bars() -> None:
    """Off a terminal, turn off the bars of datasets (``Generating ... split``, ``Saving the dataset``),
    transformers (``Loading checkpoint shards``) and huggingface_hub (downloads): in a log file each
    redraw is one more line of carriage returns. On a terminal they stay."""
    if on_terminal():
        return
    import datasets
    import huggingface_hub
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()


class Progress:
    """Count rows of a long loop: ``with Progress("generate", n) as p: ... p.update(len(batch))``.

    A tqdm bar (with rows/s and ETA) when stderr is a terminal, else a log line every
    :func:`report_every_s` seconds; a closing log line with the total either way (not after an error).
    ``clock`` and ``every_s`` are for tests.
    """

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "rows",
        *,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.total, self.unit = label, total, unit
        self.every_s = report_every_s() if every_s is None else every_s
        self.clock = clock
        self.done = 0
        self._bar = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Progress:
        self.started = self._last = self.clock()
        if on_terminal():
            from tqdm import tqdm

            self._stack.enter_context(log_above_bars())
            self._bar = self._stack.enter_context(
                tqdm(total=self.total, desc=self.label, unit=f" {self.unit}", dynamic_ncols=True, leave=False)
            )
        return self

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = self.clock()
        if now - self._last >= self.every_s and self.done < self.total:
            self._last = now
            log.info("%s", progress_line(self.label, self.done, self.total, now - self.started, self.unit))

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stack.close()  # the bar goes first, so the closing line is not drawn under it
        if exc_type is None:
            log.info("%s", done_line(self.label, self.done, self.clock() - self.started, self.unit))
