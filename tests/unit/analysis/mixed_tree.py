"""A mixed results tree written by hand (no training): two LoRA ranks x 2 seeds, a score-mode run, a
failed run and a duplicate folder, with predictions.jsonl rows carrying example ids.

Records are what the runner writes: every one passes ``bench.record.conform`` (the documented
result.json schema), and its ``config.dataset`` is the composed ``glue/sst2`` config (what the scorer
reads to score predictions per example), with accuracy as its headline.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
from pathlib import Path

from omegaconf import OmegaConf

from bench.record import conform

LABELS = ["negative", "positive"]
REFERENCES = ["positive", "negative"] * 4  # 8 test examples
IDS = [f"{i}-{i:08x}" for i in range(8)]

# (rank, eval mode, seed) -> per-example correctness; the headline (accuracy) is its mean.
CORRECT = {
    (8, "generate", 1): [1, 1, 1, 1, 1, 1, 0, 0],  # 0.750
    (8, "generate", 2): [1, 1, 1, 1, 1, 1, 1, 0],  # 0.875
    (16, "generate", 1): [1, 1, 1, 1, 1, 1, 1, 1],  # 1.000
    (16, "generate", 2): [1, 1, 1, 1, 1, 1, 1, 0],  # 0.875
    (16, "score", 1): [1, 1, 1, 1, 0, 0, 0, 0],  # 0.500
}


@functools.cache
def _composed(name: str) -> str:
    from bench.rescore import dataset_config

    return json.dumps(OmegaConf.to_container(dataset_config(name).dataset, resolve=True))


def composed_dataset(name: str) -> dict:
    """``dataset=name`` composed from conf/ (what a record's ``config.dataset`` holds)."""
    return json.loads(_composed(name))


def dataset_block(**changes) -> dict:
    """The composed glue/sst2 dataset config, capped at 8 test rows, accuracy as the headline;
    ``changes`` override keys."""
    block = composed_dataset("glue/sst2")
    assert block["label_names"] == LABELS  # the label words of the predictions below
    block.update({"max_eval_samples": 8, "headline_metric": "accuracy", **changes})
    return block


def config(rank: int, mode: str, seed: int) -> dict:
    return {
        "seed": seed,
        "model": {"name": "tiny-random", "architecture": {"layers": 2}},
        "method": {"name": "lora", "family": "reparametrized", "options": {"r": rank, "lora_alpha": 16}},
        "dataset": dataset_block(),
        "eval": {"mode": mode, "batch_size": 32},
        "trainer": {"learning_rate": 1e-4},
        "paths": {"results_dir": "elsewhere"},  # not identity: never labels a variant
        "hardware": {"device": "cpu"},
    }


def record(rank: int, mode: str, seed: int, status: str = "success") -> dict:
    correct = CORRECT.get((rank, mode, seed))
    value = sum(correct) / len(correct) if correct else None
    rec = {
        "status": status,
        "error": None if status == "success" else "RuntimeError: out of memory",
        "run_key": f"tiny-random__lora__glue-sst2__seed{seed}__r{rank}{mode}",
        "model": "tiny-random",
        "method": "lora",
        "method_family": "reparametrized",
        "dataset": "glue/sst2",
        "seed": seed,
        "config": config(rank, mode, seed),
        "trainable_params": 1000 * rank,
        "total_params": 1_000_000,
        "flops_delta": 0,
        "peak_memory_bytes": 1_000_000_000
        * seed,  # 1 GB, 2 GB: the mean (1.5) differs from a median of 3 runs
        "n_test": 8,
        "eval_mode": mode,
        "headline_metric": "accuracy",
        "headline_value": value,
        "metrics": {"accuracy": value, "invalid_rate": 0.125 if correct else None} if correct else {},
    }
    return rec


def predictions(correct: list[int], with_ids: bool = True) -> list[dict]:
    rows = []
    for i, (ok, ref) in enumerate(zip(correct, REFERENCES, strict=True)):
        wrong = LABELS[1 - LABELS.index(ref)]
        parsed = ref if ok else (None if i == 7 else wrong)
        row = {"prompt": f"p{i}", "generated": parsed or "??", "reference": ref, "parsed": parsed}
        row["valid"] = parsed is not None
        if with_ids:
            row = {"id": IDS[i], **row}
        rows.append(row)
    return rows


def write_run(folder: Path, rec: dict, rows: list[dict] | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(conform(rec)))  # the runner's schema, or fail
    if rows is not None:
        (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def build(root: Path) -> Path:
    """The tree under ``root/results``; returns it. Folder names mean nothing."""
    results = root / "results"
    for i, (key, correct) in enumerate(CORRECT.items()):
        write_run(results / f"run{i}", record(*key), predictions(correct))
    write_run(results / "run_failed", record(8, "generate", 3, status="failed"), None)
    shutil.copytree(results / "run0", results / "copy_of_run0")  # the same run key twice
    return results


def with_config(rec: dict, **changes) -> dict:
    rec = copy.deepcopy(rec)
    rec.update(changes)
    return rec


def compile_tex(paths: list[Path], folder: Path, name: str = "doc", wide: bool = False) -> Path:
    """Compile ``paths`` (``.tex`` tables, ``\\input`` in order) with pdflatex in ``folder``, as a paper
    would (booktabs, T1 fonts; ``wide``: an A3 landscape page); assert it compiles; return the PDF."""
    doc = folder / f"{name}.tex"
    inputs = "".join(f"\\input{{{p}}}\n" for p in paths)
    page = "\\usepackage[a3paper,landscape,margin=1cm]{geometry}\n" if wide else ""
    doc.write_text(
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
        f"{page}\\begin{{document}}\n{inputs}\\end{{document}}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{', '.join(map(str, paths))}:\n{done.stdout[-2000:]}"
    return doc.with_suffix(".pdf")
