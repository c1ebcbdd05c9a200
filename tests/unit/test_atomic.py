"""Write-then-rename keeps the umask's permissions: a group-shared cache on a cluster stays readable."""

from __future__ import annotations

import os
import stat

from bench.atomic import _UMASK, atomic_dir, atomic_file


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_cached_folders_and_files_follow_the_umask_not_mkdtemp_s_0700(tmp_path):
    with atomic_dir(tmp_path / "model", marker="done") as tmp:
        (tmp / "done").write_text("1")
    with atomic_file(tmp_path / "result.json") as tmp:
        tmp.write_text("{}")
    assert _mode(tmp_path / "model") == 0o777 & ~_UMASK  # 0o755 with the usual umask 022, not 0o700
    assert _mode(tmp_path / "result.json") == 0o666 & ~_UMASK
    assert (tmp_path / "model" / "done").read_text() == "1"
