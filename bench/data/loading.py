"""Load one split of a dataset from the hub, a local mirror, or files shipped with the project."""

from __future__ import annotations

from pathlib import Path

from bench.config.schema import DatasetConfig
from bench.errors import ConfigError, DataError


def mirror_path(mirror: str | Path, hub_id: str, hub_config: str | None, split: str) -> Path:
    """``DIR/<hub repo id>/<config>/<split>.parquet`` (config ``default`` when the dataset has none)."""
    return Path(mirror).expanduser() / hub_id / (hub_config or "default") / f"{split}.parquet"


def load_split(ds: DatasetConfig, split: str, mirror: str | None = None):
    """Return the ``datasets.Dataset`` for ``split``.

    Order of sources: ``dataset.data_dir`` (files shipped with the project), then ``data.mirror``,
    then the hub by id (``datasets.load_dataset``; no dataset scripts).
    """
    from datasets import load_dataset

    from bench.progress import quiet_library_bars

    quiet_library_bars()  # off a terminal: no "Generating ... split" / "Saving the dataset" bars in logs
    if ds.data_dir:
        from bench import PROJECT_DIR

        path = Path(ds.data_dir)
        path = path if path.is_absolute() else PROJECT_DIR / path
        file = path / f"{split}.jsonl"
        if not file.exists():
            raise DataError(f"dataset {ds.name!r}: split {split!r} not found: looked for {file}.")
        return load_dataset("json", data_files={split: str(file)}, split=split)
    if not ds.hub_id:
        raise ConfigError(f"dataset {ds.name!r}: set dataset.hub_id (hub repo id) or dataset.data_dir.")
    if mirror:
        file = mirror_path(mirror, ds.hub_id, ds.hub_config, split)
        if not file.exists():
            raise DataError(
                f"dataset {ds.name!r}: mirror file not found: {file}. Populate the mirror "
                f"(python -m bench.prepare) or unset data.mirror / PEFTBENCH_DATA_MIRROR to use the hub."
            )
        return load_dataset("parquet", data_files={split: str(file)}, split=split)
    return load_dataset(ds.hub_id, ds.hub_config, split=split)
