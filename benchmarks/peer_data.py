"""Rows in the peer's (PEFT-Factory's) local-data format, written beside peftbench's JSONL."""

from __future__ import annotations

import json
from pathlib import Path


def write_peer_data(data: Path, train: list[dict], test: list[dict], instruction: str) -> None:
    """``train.json`` / ``test.json`` (prompt = instruction, query = input, response = label) and the
    ``dataset_info.json`` naming them ``bench_train`` / ``bench_test``."""
    for name, rows in (("train", train), ("test", test)):
        peer_rows = [{"prompt": instruction, "query": r["text"], "response": r["label"]} for r in rows]
        (data / f"{name}.json").write_text(json.dumps(peer_rows))
    info = {
        f"bench_{name}": {
            "file_name": f"{name}.json",
            "columns": {"prompt": "prompt", "query": "query", "response": "response"},
        }
        for name in ("train", "test")
    }
    (data / "dataset_info.json").write_text(json.dumps(info, indent=2))
