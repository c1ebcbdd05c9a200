"""Benchmark: soft-prompt generation with the KV cache vs without (issue 15, part 3).

    python benchmarks/softprompt_cache.py [--model tiny-random] [--prompts 16] [--max-new-tokens 32]

For prompt tuning, P-Tuning, P-Tuning v2, prefix tuning and MPT: greedy generation through the runner's
``generate_texts`` (equal-length batches, as prediction batches soft prompts), once with the KV cache
(``kv_cache_works`` accepting the virtual tokens) and once as before issue 15 (``use_cache=False``:
every new token re-reads the whole sequence). Prints seconds, tokens/s, the speed-up, and whether both
gave the same text; prefix tuning and P-Tuning v2 could not generate uncached at all (a shape error at
the second token), shown as ``failed``.
"""

from __future__ import annotations

import argparse
import os
import time
from unittest import mock

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SOFT_PROMPTS = ("prompt_tuning", "p_tuning", "p_tuning_v2", "prefix_tuning", "mpt")


def compose_config(*overrides: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench import CONF_DIR
    from bench.config.run_key import register_resolver
    from bench.config.schema import register_configs

    register_configs()
    register_resolver()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def prompts_for(tok, n: int) -> list[list[int]]:
    """``n`` prompts of a few lengths (pairs of equal length, so batches hold more than one row)."""
    words = "please route this support ticket about a wrong invoice to the right team today".split()
    return [
        tok(" ".join(words[: 4 + (i // 2) % 10]), add_special_tokens=False)["input_ids"] for i in range(n)
    ]


def compare(model, tok, prompts, max_new_tokens: int, batch_size: int = 8) -> dict:
    """Seconds and outputs of cached and uncached generation of ``prompts`` by ``model``."""
    import torch

    import bench.evaluation.generate as generate
    from bench.models import inference_autocast

    row = {}
    for label, cached in (("cached", True), ("uncached", False)):
        with mock.patch.object(generate, "kv_cache_works", lambda model, cached=cached: cached):
            start = time.perf_counter()
            try:
                with inference_autocast(model):
                    texts = generate.generate_texts(
                        model,
                        tok,
                        prompts,
                        max_new_tokens=max_new_tokens,
                        batch_size=batch_size,
                        same_length_batches=True,
                    )
            except RuntimeError as err:  # prefix tuning / P-Tuning v2 without the cache
                row[label] = {"s": None, "error": str(err).split(".")[0]}
                continue
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            row[label] = {"s": time.perf_counter() - start, "texts": texts}
    c, u = row["cached"], row["uncached"]
    return {
        "cached_s": c["s"],
        "uncached_s": u["s"],
        "speedup": u["s"] / c["s"] if u["s"] and c["s"] else None,
        "same_text": c.get("texts") == u.get("texts") if u["s"] else None,
        "uncached_error": u.get("error"),
    }


def soft_prompt_model(method: str, model_name: str, cache_dir: str, precision: str = "fp32", device="cpu"):
    import torch

    from bench.methods import apply_method
    from bench.models import load_model_and_tokenizer

    cfg = compose_config(f"model={model_name}", f"method={method}", f"paths.cache_dir={cache_dir}")
    base, tok = load_model_and_tokenizer(cfg.model, cfg.paths.cache_dir, precision)
    torch.manual_seed(0)
    model = apply_method(base, cfg.method).to(device)
    with torch.no_grad():  # trained-ish virtual tokens: off their initialisation
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * param.std().clamp(min=0.02))
    return model.eval(), tok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--methods", default=",".join(SOFT_PROMPTS))
    # 1 thread: on a shared 2-core machine torch's 2 threads wait on each other (100x slower steps)
    parser.add_argument("--threads", type=int, default=1)
    cache = os.environ.get("PEFTBENCH_CACHE", "~/.cache/peftbench")
    parser.add_argument("--cache-dir", default=os.path.expanduser(cache))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print("| model | method | cached s | uncached s | speed-up | same text |")
    print("|---|---|---:|---:|---:|---|")
    for method in args.methods.split(","):
        model, tok = soft_prompt_model(method, args.model, args.cache_dir)
        r = compare(model, tok, prompts_for(tok, args.prompts), args.max_new_tokens)
        uncached = f"{r['uncached_s']:.2f}" if r["uncached_s"] else f"failed ({r['uncached_error']})"
        speedup = f"{r['speedup']:.1f}x" if r["speedup"] else "-"
        print(
            f"| {args.model} | {method} | {r['cached_s']:.2f} | {uncached} | {speedup} | {r['same_text']} |"
        )


if __name__ == "__main__":
    main()
