"""Write-then-rename: a reader, or a re-launch after a kill, sees the old content or the complete new one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block succeeds it replaces ``path``.

    The file gets the umask's permissions (mkstemp's 0600 would hide results from other users);
    on an error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | os.PathLike, marker: str) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; once the block succeeds it is renamed to ``path``.

    If another process renamed its folder into place first (``path/marker`` exists), that one is kept.
    The folder gets the umask's permissions (mkdtemp's 0700 would hide a group-shared cache from the
    other users of a cluster).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        try:
            os.rename(tmp, path)
        except OSError:  # lost the race: keep the winner's complete folder
            if not (path / marker).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unreadable_file(folder: str | os.PathLike) -> str | None:
    """The first file in ``folder`` that cannot be read whole (``None``: all can), with the reason.

    Checks what a resume reads: safetensors headers and sizes, JSON, and torch's zip archives (CRCs),
    so a truncated or garbled file is found before Trainer or peft fail on it with a bare message.
    """
    import json
    import zipfile

    from safetensors import safe_open

    for path in sorted(Path(folder).iterdir()):
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as f:
                    for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                        f.get_slice(name)
            elif path.suffix == ".json" or path.name == ".complete":
                json.loads(path.read_text())
            elif path.suffix in (".pt", ".pth", ".bin") and zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as archive:
                    bad = archive.testzip()
                if bad is not None:
                    return f"{path}: damaged member {bad}"
            elif path.suffix in (".pt", ".pth", ".bin"):
                return f"{path}: not a complete torch archive"
        except Exception as err:  # noqa: BLE001 (each library raises its own type for a damaged file)
            return f"{path}: {type(err).__name__}: {err}"
    return None
