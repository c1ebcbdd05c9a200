"""Evaluate a finished run's saved adapter again, in another eval mode, and print the result as JSON.

    python benchmarks/eval_saved.py RUN_DIR [--mode score|generate] [--batch-size N]

RUN_DIR is a run folder (``result.json`` + ``adapter/``). The config is the one the run recorded; the
model, the method's saved weights and the test prompts load as the runner loads them, and ``predict``
is the runner's. Used by benchmarks/perf.py for score-mode numbers on the very model a run trained.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--mode", default="score", choices=("score", "generate"))
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()

    import torch
    from omegaconf import OmegaConf

    from bench.data.pipeline import prepare_data
    from bench.evaluation.predict import predict
    from bench.methods import load_method
    from bench.models import load_model_and_tokenizer

    record = json.loads((args.run_dir / "result.json").read_text())
    cfg = OmegaConf.create(record["config"])
    cfg.eval.mode = args.mode
    if args.batch_size:
        cfg.eval.batch_size = args.batch_size
    if cfg.hardware.num_threads:
        torch.set_num_threads(cfg.hardware.num_threads)
    model, tokenizer = load_model_and_tokenizer(cfg.model, cfg.paths.cache_dir)
    data = prepare_data(cfg, tokenizer)
    if cfg.method.provider != "none":
        model = load_method(model, cfg.method, args.run_dir / "adapter")
    model.eval()
    evaluation = predict(cfg, model, tokenizer, data)
    print(
        json.dumps(
            {
                "mode": args.mode,
                "rows": len(evaluation.rows),
                "runtime_s": evaluation.runtime_s,
                "samples_per_s": len(evaluation.rows) / evaluation.runtime_s,
                "metrics": evaluation.metrics,
            }
        )
    )


if __name__ == "__main__":
    main()
