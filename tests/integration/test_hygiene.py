"""Cluster hygiene: the datasets cache under paths.cache_dir, no temporary folders left behind."""

from __future__ import annotations

import os
import subprocess
import sys

from bench import PROJECT_DIR
from tests.conftest import TINY


def test_pissa_leaves_no_temporary_folder_and_datasets_cache_under_cache_dir(tmp_path, cache_dir):
    """PiSSA keeps its initial adapter in a temporary folder to convert the saved one; it must go."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HF_DATASETS_CACHE"}
    env.update(TMPDIR=str(temp), PEFTBENCH_CACHE=str(tmp_path / "cache"))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "method=pissa",
            *TINY,
            "trainer.max_steps=2",
            "trainer.eval_every=1.0",
            f"paths.results_dir={tmp_path / 'results'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert not list(temp.glob("peftbench-initial-adapter-*"))
    assert list((tmp_path / "cache" / "datasets").glob("json/*"))  # the demo task's JSONL, as Arrow
