"""Result files: atomic JSON writes, the run record, and run info (versions, git, device)."""

from __future__ import annotations

import json
import math
import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.atomic import atomic_file

# the core stack, then the method-specific packages (None where not installed): adapters (bottleneck
# adapters), bitsandbytes (QLoRA), galore-torch (GaLore)
PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "datasets",
    "accelerate",
    "hydra-core",
    "adapters",
    "bitsandbytes",
    "galore-torch",
)


def _json_default(obj: Any):
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _nan_to_none(obj: Any) -> Any:
    """JSON has no NaN: a missing value is written as null (with a status beside it)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as JSON (NaN as null), fsynced, by write-then-rename."""
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        json.dump(_nan_to_none(data), f, indent=2, default=_json_default, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def write_jsonl_atomic(path: str | os.PathLike, rows: list[dict]) -> None:
    """One JSON object per line, by write-then-rename."""
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(_nan_to_none(row), default=_json_default) + "\n")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info(device: str) -> dict[str, Any]:
    """What ran the work: on CUDA the GPU's name and memory, the CUDA runtime torch was built with, the
    driver version (NVML) and the GPUs visible; the CUDA fields are None on CPU."""
    import torch

    info: dict[str, Any] = {
        "device": device,
        "gpu_name": None,
        "gpu_memory_bytes": None,
        "gpus_visible": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "cuda_version": None,
        "cudnn_version": None,
        "driver_version": None,
    }
    if not device.startswith("cuda"):
        return info
    index = torch.device(device).index
    index = torch.cuda.current_device() if index is None else index
    props = torch.cuda.get_device_properties(index)
    info.update(
        gpu_name=props.name,
        gpu_memory_bytes=int(props.total_memory),
        cuda_version=torch.version.cuda,
        cudnn_version=torch.backends.cudnn.version(),
        driver_version=_driver_version(),
    )
    return info


def _driver_version() -> str | None:
    """The NVIDIA driver version by NVML (pynvml ships with torch's CUDA wheels), else nvidia-smi."""
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # noqa: BLE001  (no NVML binding or no driver: try the command line)
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def git_commit() -> str | None:
    """HEAD of the peftbench checkout, with ``-dirty`` when tracked files differ; None outside git."""
    from bench import PROJECT_DIR

    try:
        head = subprocess.run(
            ["git", "-C", str(PROJECT_DIR), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_DIR), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if dirty else head


def read_result(path: str | os.PathLike) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
