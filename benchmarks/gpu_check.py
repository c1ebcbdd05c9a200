"""The GPU check: what must hold on a CUDA GPU before the benchmark spends GPU-hours (issue 15, part 5).

    python benchmarks/gpu_check.py [--out DIR]          # one GPU, at most ~10 minutes
    python benchmarks/gpu_check.py --cpu [--out DIR]    # the same checks, small, on the CPU (CI)

Checks, in order (each one's status is ok, failed or skipped with the reason; a failure does not stop
the later checks; past ``--budget-s`` the remaining checks are skipped):

1. ``versions``: packages, the GPU (name, memory, CUDA, driver), bf16 support, TF32 flags, the SDPA
   attention backends torch may pick.
2. ``methods_bf16``: every method in ``conf/method`` for a few steps with bf16 weights and autocast on
   tiny-random, through ``bench.run.run_experiment``: success and fp32 trainable parameters.
3. ``qlora``: QLoRA end to end (4-bit NF4 base through bitsandbytes); skipped where it cannot run.
4. ``llama3_8b_shape``: Llama-3-8B-shaped models (hidden 4096, 32 heads, 8 KV heads, MLP 14336, vocab
   128,256; random weights) of 2 and 4 layers with LoRA, a few bf16 training steps each: peak memory,
   memory per layer, step time per layer and utilisation (FLOP/s of a step over a bf16 matmul ceiling).
   ``--cpu``: the same code at hidden 256.
5. ``flops_cpu_vs_cuda``: torch's FLOP count of one forward pass on the CPU and on the GPU (SDPA
   attention is counted on CUDA only: why the base FLOP cache is keyed by device).
6. ``soft_prompt_cache``: cached vs uncached soft-prompt generation (same text, speed-up).
7. ``merged_vs_unmerged_bf16``: a bf16 LoRA model with a small update: prediction's logits vs the
   unmerged model's and the fp32 model's, and how much of the update a bf16 merge would lose.

Prints one line per check and writes ``gpu_check.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # softprompt_cache beside this file

LLAMA3_8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
}
LLAMA3_8B_CPU = {  # the same proportions, small enough for a CPU test
    "hidden_size": 128,
    "intermediate_size": 448,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "vocab_size": 1024,
}


class Check:
    """Options shared by the checks: device, sizes, a scratch folder, the model cache."""

    def __init__(self, cpu: bool, work: Path, cache_dir: Path, methods: list[str] | None) -> None:
        self.cpu = cpu
        self.device = "cpu" if cpu else "cuda"
        self.work = work
        self.cache_dir = cache_dir
        self.methods = methods

    def compose(self, *overrides: str):
        from softprompt_cache import compose_config

        hardware = ("hardware=cpu", "hardware.precision=bf16") if self.cpu else ("hardware=gpu",)
        return compose_config(*hardware, f"paths.cache_dir={self.cache_dir}", *overrides)

    def sync(self) -> None:
        import torch

        if not self.cpu:
            torch.cuda.synchronize()


def check_versions(c: Check) -> dict:
    import torch

    from bench.results import device_info, package_versions

    if not c.cpu and not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA GPU; use --cpu on this machine")
    cuda = torch.backends.cuda
    out = {
        "packages": package_versions(),
        "device": device_info(c.device),
        "torch_cuda_build": torch.version.cuda,
        "bf16_supported": torch.cuda.is_bf16_supported() if not c.cpu else _cpu_bf16_matmul_works(),
        "tf32_matmul": cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "sdpa_backends": {
            "flash": cuda.flash_sdp_enabled(),
            "mem_efficient": cuda.mem_efficient_sdp_enabled(),
            "cudnn": cuda.cudnn_sdp_enabled() if hasattr(cuda, "cudnn_sdp_enabled") else None,
            "math": cuda.math_sdp_enabled(),
        },
    }
    if not c.cpu:
        out["flash_attention_usable"] = _flash_usable()
    return out


def _cpu_bf16_matmul_works() -> bool:
    import torch

    a = torch.randn(8, 8)
    return bool(torch.allclose((a.bfloat16() @ a.bfloat16()).float(), a @ a, atol=0.5))


def _flash_usable() -> bool:
    """Whether SDPA's flash kernel runs a bf16 causal attention of Llama's head size here."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, 32, 128, 128, device="cuda", dtype=torch.bfloat16)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
    except RuntimeError:
        return False
    return True


def _run_method(c: Check, method: str, steps: int = 2) -> dict:
    import torch

    import bench.training
    from bench.errors import ConfigError
    from bench.methods import check_requirements
    from bench.run import run_experiment

    cfg = c.compose(
        "model=tiny-random",
        f"method={method}",
        "dataset.max_train_samples=8",
        "dataset.max_eval_samples=2",
        "dataset.val_fraction=0",
        f"trainer.max_steps={steps}",
        "trainer.batch_size=4",
        "save_adapter=false",
        f"paths.results_dir={c.work}",
    )
    try:
        check_requirements(cfg.method)
    except ConfigError as err:
        return {"status": "skipped", "reason": str(err)}
    seen: dict[str, list[str]] = {}
    train = bench.training.train

    def recording_train(cfg, model, *args, **kwargs):
        seen["trainable"] = sorted({str(p.dtype) for p in model.parameters() if p.requires_grad})
        return train(cfg, model, *args, **kwargs)

    bench.training.train = recording_train
    try:
        start = time.perf_counter()
        record = run_experiment(cfg, c.work / method)
    finally:
        bench.training.train = train
    fp32 = seen.get("trainable", [str(torch.float32)]) == [str(torch.float32)]
    ok = record["status"] == "success" and fp32
    return {
        "status": "ok" if ok else "failed",
        "seconds": round(time.perf_counter() - start, 2),
        "trainable_dtypes": seen.get("trainable"),
        "peak_memory_bytes": record.get("peak_memory_bytes"),
        "peak_memory_device_bytes": record.get("peak_memory_device_bytes"),
        "error": record.get("error"),
    }


def check_methods_bf16(c: Check) -> dict:
    from bench import CONF_DIR

    names = c.methods or sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml") if p.stem != "qlora")
    runs = {name: _run_method(c, name) for name in names}
    failed = [n for n, r in runs.items() if r["status"] == "failed"]
    return {"runs": runs, "failed": failed, "status": "failed" if failed else "ok"}


def check_qlora(c: Check) -> dict:
    return _run_method(c, "qlora", steps=2)


def _llama_step(c: Check, layers: int, shape: dict, seq: int, batch: int, steps: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.measure import PeakMemory
    from bench.models import trainable_to_fp32

    config = LlamaConfig(num_hidden_layers=layers, max_position_embeddings=max(seq, 128), **shape)
    torch.manual_seed(0)
    with torch.device(c.device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    trainable_to_fp32(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, shape["vocab_size"], (batch, seq), device=c.device)

    def step() -> None:
        with torch.autocast(c.device, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:
        step()  # also the warm-up
    times = []
    with PeakMemory(c.device) as peak:
        for _ in range(steps):
            start = time.perf_counter()
            step()
            c.sync()
            times.append(time.perf_counter() - start)
    best = min(times)
    return {
        "layers": layers,
        "step_s": round(best, 4),
        "flops_per_step": int(counter.get_total_flops()),
        "flop_per_s": counter.get_total_flops() / best,
        "peak_memory_bytes": peak.peak_bytes,
        "peak_memory_device_bytes": peak.device_bytes,
    }


def _bf16_matmul_ceiling(c: Check) -> float:
    import torch

    n = 512 if c.cpu else 8192
    a = torch.randn(n, n, device=c.device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    c.sync()
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            a @ a
        c.sync()
        best = max(best, 10 * 2 * n**3 / (time.perf_counter() - start))
    return best


def check_llama3_8b_shape(c: Check) -> dict:
    shape = LLAMA3_8B_CPU if c.cpu else LLAMA3_8B
    seq, batch, steps = (32, 1, 1) if c.cpu else (2048, 4, 5)  # the paper's cutoff 2048, batch 4
    runs = []
    for layers in (2, 4):
        runs.append(_llama_step(c, layers, shape, seq, batch, steps))
        if not c.cpu:
            import torch

            torch.cuda.empty_cache()  # the next model starts from an empty allocator cache
    two, four = runs
    ceiling = _bf16_matmul_ceiling(c)
    return {
        "shape": shape,
        "seq_len": seq,
        "batch": batch,
        "runs": [two, four],
        "memory_per_layer_bytes": (four["peak_memory_bytes"] - two["peak_memory_bytes"]) // 2,
        "step_s_per_layer": round((four["step_s"] - two["step_s"]) / 2, 4),
        "bf16_matmul_ceiling_flop_per_s": ceiling,
        "utilisation_4_layers": round(four["flop_per_s"] / ceiling, 3),
    }


def check_flops_cpu_vs_cuda(c: Check) -> dict:
    import torch

    from bench.measure import forward_flops
    from bench.models import load_model_and_tokenizer

    cfg = c.compose("model=tiny-random")
    model, _ = load_model_and_tokenizer(cfg.model, c.cache_dir, "bf16")
    out = {"cpu": forward_flops(model, 512), "cuda": None}
    if not c.cpu and torch.cuda.is_available():
        out["cuda"] = forward_flops(model.to("cuda"), 512)
        out["cuda_minus_cpu"] = out["cuda"] - out["cpu"]
    return out


def check_soft_prompt_cache(c: Check) -> dict:
    from softprompt_cache import compare, prompts_for, soft_prompt_model

    rows = {}
    for method in ("prompt_tuning", "prefix_tuning"):
        model, tok = soft_prompt_model(method, "tiny-random", str(c.cache_dir), "bf16", c.device)
        rows[method] = compare(model, tok, prompts_for(tok, 8), 16)
    bad = [m for m, r in rows.items() if r["same_text"] is False]
    return {"methods": rows, "status": "failed" if bad else "ok"}


def check_merged_vs_unmerged_bf16(c: Check) -> dict:
    import torch

    from bench.methods import apply_method, merged_for_inference
    from bench.models import inference_autocast, load_model_and_tokenizer

    def lora(precision: str):
        cfg = c.compose("model=tiny-random", "method=lora")
        base, _ = load_model_and_tokenizer(cfg.model, c.cache_dir, precision)
        torch.manual_seed(0)
        model = apply_method(base, cfg.method).to(c.device)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.05)  # an update well above bf16's noise on the logits
        return model.eval()

    ids = torch.arange(5, 37, device=c.device)[None]
    bf16, fp32 = lora("bf16"), lora("fp32")
    with torch.no_grad():
        with inference_autocast(bf16):
            unmerged = bf16(input_ids=ids).logits.float()
            with merged_for_inference(bf16):
                predicted = bf16(input_ids=ids).logits.float()
            base_bf16 = _without_adapter(bf16, ids)
            bf16.merge_adapter()  # what merging into bf16 weights would evaluate
            naive = bf16(input_ids=ids).logits.float()
            bf16.unmerge_adapter()
        update = fp32(input_ids=ids).logits.float() - _without_adapter(fp32, ids)  # the trained update

    def update_error(logits) -> float:
        """How far the update a bf16 model applies is from the fp32 update (relative, in norm)."""
        return ((logits - base_bf16) - update).norm().item() / update.norm().item()

    out = {
        "max_abs_predicted_vs_unmerged": (predicted - unmerged).abs().max().item(),
        "logits_update_error_predicted": update_error(predicted),
        "logits_update_error_bf16_merge": update_error(naive),
        "weight_update_error_bf16_merge": _bf16_merge_error(bf16, 1e-4),
    }
    ok = out["max_abs_predicted_vs_unmerged"] == 0 and out["logits_update_error_predicted"] < 0.1
    out["status"] = "ok" if ok else "failed"
    return out


def _bf16_merge_error(model, scale: float) -> float:
    """Relative error of a LoRA update of size ``scale`` merged into one bf16 weight (W + dW rounded)."""
    import torch

    layer = next(m for m in model.modules() if hasattr(m, "lora_B"))
    weight = layer.base_layer.weight.detach().float()
    generator = torch.Generator(device=weight.device).manual_seed(0)
    delta = torch.randn(weight.shape, generator=generator, device=weight.device) * scale
    merged = (weight + delta).bfloat16().float() - weight
    return ((merged - delta).norm() / delta.norm()).item()


def _without_adapter(model, ids):
    with model.disable_adapter():
        return model(input_ids=ids).logits.float()


CHECKS: list[tuple[str, Callable[[Check], dict]]] = [
    ("versions", check_versions),
    ("methods_bf16", check_methods_bf16),
    ("qlora", check_qlora),
    ("llama3_8b_shape", check_llama3_8b_shape),
    ("flops_cpu_vs_cuda", check_flops_cpu_vs_cuda),
    ("soft_prompt_cache", check_soft_prompt_cache),
    ("merged_vs_unmerged_bf16", check_merged_vs_unmerged_bf16),
]


def run_checks(
    cpu: bool,
    out: Path,
    methods: list[str] | None = None,
    budget_s: float = 600,
    only: list[str] | None = None,
    cache_dir: Path | None = None,
) -> dict:
    """Run the checks in order; returns (and writes to ``out/gpu_check.json``) one entry per check."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    if cpu:  # small ops: on a busy machine torch's threads mostly wait on each other
        torch.set_num_threads(1)
    cache = cache_dir or Path(os.environ.get("PEFTBENCH_CACHE", "~/.cache/peftbench")).expanduser()
    c = Check(cpu, Path(tempfile.mkdtemp(prefix="gpu_check_", dir=out)), cache, methods)
    report: dict[str, dict] = {}
    start = time.perf_counter()
    for name, fn in CHECKS:
        if only and name not in only:
            continue
        if time.perf_counter() - start > budget_s:
            report[name] = {"status": "skipped", "reason": f"past the {budget_s:.0f} s budget"}
        else:
            t0 = time.perf_counter()
            try:
                result = fn(c)
                result.setdefault("status", "ok")
            except Exception as err:  # noqa: BLE001  (a failed check is reported; the next one runs)
                result = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
                result["traceback"] = traceback.format_exc()
            result["seconds"] = round(time.perf_counter() - t0, 2)
            report[name] = result
        print(f"{name}: {report[name]['status']} ({report[name].get('seconds', 0)} s)", flush=True)
    torch.set_num_threads(threads)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu", action="store_true", help="the same checks, small, on the CPU")
    parser.add_argument("--out", type=Path, default=Path("gpu_check_out"))
    parser.add_argument("--methods", help="comma-separated methods for methods_bf16 (default: all)")
    parser.add_argument("--only", help="comma-separated check names (default: all, in order)")
    parser.add_argument("--budget-s", type=float, default=600, help="skip checks that start later")
    args = parser.parse_args(argv)
    report = run_checks(
        args.cpu,
        args.out,
        args.methods.split(",") if args.methods else None,
        args.budget_s,
        args.only.split(",") if args.only else None,
    )
    return 1 if any(r["status"] == "failed" for r in report.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
