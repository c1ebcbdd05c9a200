"""peftbench vs PEFT-Factory on the same work, side by side, interleaved A/B/A/B (issue 8).

    python benchmarks/perf.py [--works A C] [--repeats 2] [--out DIR] [--mirror ../shared/data/hub]

Per work and repeat: the peer trains (``llamafactory-cli train``), peftbench trains and evaluates in
generate mode (``python -m bench``), the peer predicts with generation, peftbench's saved adapter is
evaluated in score mode (benchmarks/eval_saved.py). Every process is timed from outside the same way:

- start -> first optimizer step: parent clock before ``Popen`` to the first optimizer step, recorded by
  benchmarks/first_step/sitecustomize.py (torch's global optimizer hook; no tool code is touched);
- peak RSS: ``wait4``'s ``ru_maxrss`` of the process;
- training samples/s: each tool's Trainer ``train_samples_per_second`` (both are HF Trainer's figure);
- eval samples/s: peftbench's ``eval_samples_per_s`` (predict loop) vs the peer's
  ``predict_samples_per_second`` (its predict loop);
- accuracy / macro-F1: both tools' generations parsed by the same parser and scored by the same metric.

The same hyperparameters on both sides: LoRA r=8, alpha 16, dropout 0 on every linear projection; batch 8;
lr 1e-3, cosine, warmup 0.1, weight decay 1e-5; 1 epoch; fp32; seed 42; loss logged every 10 steps.
peftbench holds out no validation rows here (``dataset.val_fraction=0``, the peer has none) but keeps
its checkpoints every 5% (for resuming). Records go to OUT/records.jsonl; the summary is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import work_a  # noqa: E402  (benchmarks/work_a.py: Work A's inputs)
from peer_data import write_peer_data  # noqa: E402

WORK_A_INSTRUCTION = work_a.INSTRUCTION

PEER_DIR = Path(os.environ.get("PEFTBENCH_PEER_DIR", Path.home() / ".cache/peftbench/peer"))
THREADS = 2
SEED = 42
BATCH = 8
LR = 1e-3
LOGGING_STEPS = 10
PEER_MAX_NEW_TOKENS = 8  # the peer's generation budget (it also stops at EOS)


@dataclass
class Work:
    name: str
    folder: Path  # model/ and data/ (train.jsonl, validation.jsonl, train.json, test.json, dataset_info.json)
    instruction: str
    labels: list[str]
    peer_template: str
    cutoff: int
    results: list[dict] = field(default_factory=list)

    @property
    def model(self) -> Path:
        return self.folder / "model"

    @property
    def data(self) -> Path:
        return self.folder / "data"


def build_work_a(out: Path) -> Work:
    folder = out / "work_a"
    work_a.main(folder)  # model, tokenizer and both tools' data files
    return Work("A", folder, WORK_A_INSTRUCTION, ["positive", "negative"], "deepseek", 128)


def build_work_c(out: Path, mirror: Path) -> Work:
    """SmolLM2-135M-Instruct saved as a plain HF folder + 256 SST-2 train / 200 validation rows of the
    mirror, picked by peftbench's own stratified caps, written for both tools."""
    from hydra import compose, initialize_config_dir

    from bench import CONF_DIR
    from bench.config.run_key import register_resolver
    from bench.config.schema import register_configs
    from bench.data.pipeline import split_examples
    from bench.models import load_model_and_tokenizer

    folder = out / "work_c"
    register_configs()
    register_resolver()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "model=smollm2-135m-instruct",
                "dataset=glue/sst2",
                f"data.mirror={mirror}",
                "dataset.max_train_samples=256",
                "dataset.max_eval_samples=200",
                "dataset.val_fraction=0",
            ],
        )
    if not (folder / "model" / "config.json").exists():
        model, tokenizer = load_model_and_tokenizer(cfg.model, cfg.paths.cache_dir)  # fixes eos/pad
        model.save_pretrained(folder / "model")
        tokenizer.save_pretrained(folder / "model")
    splits = split_examples(cfg)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    train = [{"text": e.input, "label": e.target} for e in splits.train]
    test = [{"text": e.input, "label": e.target} for e in splits.test]
    for name, rows in (("train", train), ("validation", test)):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_peer_data(data, train, test, cfg.dataset.instruction)
    return Work("C", folder, cfg.dataset.instruction, list(cfg.dataset.label_names), "smollm2", 256)


# -- running and measuring a process ---------------------------------------------------------------


def measured(cmd: list[str], log: Path, cwd: Path = ROOT) -> dict:
    """Run ``cmd`` to completion; wall time, start -> first optimizer step, peak RSS, load before."""
    first = log.with_suffix(".first_step")
    first.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE / "first_step"),
        "PEFTBENCH_FIRST_STEP_FILE": str(first),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "WANDB_DISABLED": "true",
        "OMP_NUM_THREADS": str(THREADS),
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    load = os.getloadavg()[0]
    start = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - start
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"{' '.join(cmd[:3])}... failed (exit {rc}); log {log}:\n{tail}")
    return {
        "wall_s": wall,
        "first_step_s": float(first.read_text()) - start if first.exists() else None,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,  # kernel time: mostly page faults; high values flag a slow-memory run
        "minor_faults": usage.ru_minflt,
        "load_before": load,
    }


def peer_config(work: Work, out: Path, **extra) -> dict:
    return {
        "model_name_or_path": str(work.model),
        "stage": "sft",
        "finetuning_type": "lora",
        "lora_rank": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "lora_target": "all",
        "dataset_dir": str(work.data),
        "template": work.peer_template,
        "cutoff_len": work.cutoff,
        "output_dir": str(out),
        "overwrite_output_dir": True,
        "report_to": "none",
        "seed": SEED,
        "disable_gradient_checkpointing": True,
        **extra,
    }


def peer_train(work: Work, out: Path) -> dict:
    cfg = peer_config(
        work,
        out,
        do_train=True,
        dataset="bench_train",
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        learning_rate=LR,
        num_train_epochs=1.0,
        lr_scheduler_type="cosine",
        warmup_ratio=0.1,
        weight_decay=1e-5,
        logging_steps=LOGGING_STEPS,
        save_strategy="no",
    )
    path = out.with_suffix(".json")
    path.write_text(json.dumps(cfg, indent=2))
    proc = measured(
        [str(PEER_DIR / "venv/bin/llamafactory-cli"), "train", str(path)], out.with_suffix(".log")
    )
    metrics = json.loads((out / "train_results.json").read_text())
    return {**proc, "train_samples_per_s": metrics["train_samples_per_second"]}


def peer_predict(work: Work, adapter: Path, out: Path) -> dict:
    cfg = peer_config(
        work,
        out,
        adapter_name_or_path=str(adapter),
        do_predict=True,
        eval_dataset="bench_test",
        per_device_eval_batch_size=BATCH,
        predict_with_generate=True,
        do_sample=False,
        max_new_tokens=PEER_MAX_NEW_TOKENS,
    )
    path = out.with_suffix(".json")
    path.write_text(json.dumps(cfg, indent=2))
    proc = measured(
        [str(PEER_DIR / "venv/bin/llamafactory-cli"), "train", str(path)], out.with_suffix(".log")
    )
    metrics = json.loads((out / "predict_results.json").read_text())
    rows = [json.loads(x) for x in (out / "generated_predictions.jsonl").read_text().splitlines()]
    return {
        **{f"predict_{k}": v for k, v in proc.items()},  # the training process's figures stay as they are
        "eval_samples_per_s": metrics["predict_samples_per_second"],
        **score(rows, work.labels),
    }


def score(rows: list[dict], labels: list[str]) -> dict:
    """The peer's generations, parsed and scored exactly as peftbench scores its own."""
    from bench.evaluation.parse import parse_label
    from bench.metrics import compute_metrics

    parsed = [parse_label(r["predict"], labels) for r in rows]
    golds = [r["label"].strip() for r in rows]
    return compute_metrics(
        ["accuracy", "f1_macro", "invalid_rate"], parsed, golds, labels=labels, pos_label=None
    )


def ours_overrides(work: Work, results: Path) -> list[str]:
    modules = "[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"
    return [
        "model=local",
        f"model.name=work-{work.name.lower()}",
        f"model.hub_id={work.model}",
        "dataset=demo/ticket_routing",
        f"dataset.name=perf/work_{work.name.lower()}",
        f"dataset.data_dir={work.data}",
        f"dataset.label_names=[{','.join(work.labels)}]",
        f"dataset.instruction={json.dumps(work.instruction)}",
        "dataset.max_train_samples=null",
        "dataset.max_eval_samples=null",
        "dataset.val_fraction=0",
        "method=lora",
        "method.options.r=8",
        "method.options.lora_alpha=16",
        "method.options.lora_dropout=0.0",
        f"method.options.target_modules={modules}",
        f"trainer.learning_rate={LR}",
        f"trainer.batch_size={BATCH}",
        f"trainer.max_seq_length={work.cutoff}",
        f"trainer.logging_steps={LOGGING_STEPS}",
        f"seed={SEED}",
        f"paths.results_dir={results}",
        "rerun=true",
    ]


def ours_train(work: Work, results: Path) -> dict:
    py = str(ROOT / ".venv/bin/python")
    proc = measured([py, "-m", "bench", *ours_overrides(work, results)], results.with_suffix(".log"))
    run_dir = next(results.glob("*/result.json")).parent
    record = json.loads((run_dir / "result.json").read_text())
    if record["status"] != "success":
        raise SystemExit(f"peftbench run failed: {record['error']} ({run_dir})")
    m = record["metrics"]
    score_proc = subprocess.run(
        [py, str(HERE / "eval_saved.py"), str(run_dir), "--mode", "score"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(THREADS)},
    )
    scored = json.loads(score_proc.stdout.strip().splitlines()[-1])
    return {
        **proc,
        "train_samples_per_s": record["train_samples_per_s"],
        "eval_samples_per_s": record["eval_samples_per_s"],
        "accuracy": m["accuracy"],
        "f1_macro": m["f1_macro"],
        "invalid_rate": m["invalid_rate"],
        "score_samples_per_s": scored["samples_per_s"],
        "score_accuracy": scored["metrics"]["accuracy"],
        "score_f1_macro": scored["metrics"]["f1_macro"],
        "run_dir": str(run_dir),
    }


# -- machine ceiling and achieved fraction ---------------------------------------------------------


def matmul_ceiling() -> float:
    """Best FLOP/s of fp32 square matmuls (2048) on THREADS threads: the machine's practical ceiling."""
    import torch

    torch.set_num_threads(THREADS)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2 * 2048**3 / (time.perf_counter() - start))
    return best


# What any tool needs imported before its first LoRA step on a HF model with HF Trainer (transformers'
# generation module imports scikit-learn when it is installed; both venvs have it).
FLOOR_IMPORTS = (
    "import torch, transformers, peft, datasets; "
    "from transformers import Trainer, AutoModelForCausalLM; import sklearn.metrics"
)


def import_floor(out: Path, repeats: int = 3) -> list[float]:
    """Wall seconds of a fresh process of peftbench's venv that only imports FLOOR_IMPORTS, started like
    the tools' processes (``measured``): no tool that starts a new process reaches its first step sooner."""
    cmd = [str(ROOT / ".venv/bin/python"), "-c", FLOOR_IMPORTS]
    return [measured(cmd, out / "import_floor.log")["wall_s"] for _ in range(repeats)]


def training_flops(work: Work) -> tuple[float, float]:
    """Estimated FLOPs of one epoch of LoRA training on ``work`` (forward + backward), by
    torch.utils.flop_counter on one batch of the mean sequence length (peftbench's own prompts: chat
    template, instruction, input, answer, EOS), times the number of batches: (LM head over the answer
    positions only, as peftbench trains; LM head over every position, as the peer trains)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.config.schema import ModelConfig
    from bench.data.prompts import build_prompt, uses_chat_template

    tok = AutoTokenizer.from_pretrained(work.model)
    model_cfg = ModelConfig(name="perf", chat_template=True)
    rows = [json.loads(x) for x in (work.data / "train.jsonl").read_text().splitlines()]
    prompts = [build_prompt(tok, model_cfg, work.instruction, r["text"]) + r["label"] for r in rows]
    special = not uses_chat_template(tok, model_cfg)
    lengths = [len(ids) + 1 for ids in tok(prompts, add_special_tokens=special)["input_ids"]]
    mean_len = round(statistics.mean(lengths))

    model = AutoModelForCausalLM.from_pretrained(work.model)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    ids = torch.randint(3, model.config.vocab_size, (BATCH, mean_len))

    def epoch(keep: int) -> float:
        labels = ids[:, -keep:] if keep else ids
        with FlopCounterMode(display=False) as counter:
            model(input_ids=ids, labels=labels, logits_to_keep=keep).loss.backward()
        return counter.get_total_flops() * len(rows) / BATCH

    # the answer window of a one-token label: label, EOS, and the cue before them; 0 keeps every position
    return epoch(3), epoch(0)


# -- summary ---------------------------------------------------------------------------------------


def _stats(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def summarise(works: list[Work], ceiling: float, flops: dict, floor: list[float]) -> str:
    lines = [
        f"machine matmul ceiling (fp32, {THREADS} threads, 2048^3): {ceiling / 1e9:.1f} GFLOP/s",
        f"import floor before any first step ({FLOOR_IMPORTS}): "
        + " / ".join(f"{t:.2f}" for t in _stats(floor))
        + " s (min / median / max)",
        "",
    ]
    for work in works:
        peer = [r for r in work.results if r["tool"] == "peer"]
        ours = [r for r in work.results if r["tool"] == "peftbench"]
        if not peer or not ours:
            continue

        def col(rows, key):
            return [r[key] for r in rows if r.get(key) is not None]

        lines.append(f"Work {work.name} ({len(ours)} repeats each; min / median / max)")
        lines.append(f"{'figure':<36}{'peftbench':>26}{'peer':>26}{'ratio (median)':>16}{'target':>10}")
        figures = [
            ("training samples/s", "train_samples_per_s", "train_samples_per_s", True, ">= 1.3x"),
            ("generate eval samples/s", "eval_samples_per_s", "eval_samples_per_s", True, ">= 1.5x"),
            (
                "score eval samples/s (vs peer gen.)",
                "score_samples_per_s",
                "eval_samples_per_s",
                True,
                ">= 3x",
            ),
            ("start -> first optimizer step (s)", "first_step_s", "first_step_s", False, "<= 0.5x"),
            ("peak RSS, training process (GiB)", "peak_rss_gib", "peak_rss_gib", False, "<= 1x"),
            ("kernel time, training process (s)", "sys_s", "sys_s", False, "-"),
            ("accuracy (generate)", "accuracy", "accuracy", True, "equal"),
            ("macro-F1 (generate)", "f1_macro", "f1_macro", True, "equal"),
            ("accuracy (score mode)", "score_accuracy", "accuracy", True, "equal"),
        ]
        for r in work.results:
            r["peak_rss_gib"] = r["peak_rss_bytes"] / 2**30
        for label, ours_key, peer_key, _, target in figures:
            a, b = col(ours, ours_key), col(peer, peer_key)
            if not a or not b:
                continue
            sa, sb = _stats(a), _stats(b)
            ratio = sa[1] / sb[1] if sb[1] else float("nan")
            fmt = lambda s: f"{s[0]:.3g} / {s[1]:.3g} / {s[2]:.3g}"  # noqa: E731
            lines.append(f"{label:<36}{fmt(sa):>26}{fmt(sb):>26}{ratio:>15.2f}x{target:>10}")
        if work.name in flops:
            f_ours, f_peer = flops[work.name]
            rate_ours = f_ours * statistics.median(col(ours, "train_samples_per_s")) / _n_train(work)
            rate_peer = f_peer * statistics.median(col(peer, "train_samples_per_s")) / _n_train(work)
            lines.append(
                f"training FLOPs/epoch: peftbench {f_ours:.3g} (logits at answers only), peer {f_peer:.3g}; "
                f"achieved {rate_ours / 1e9:.1f} vs {rate_peer / 1e9:.1f} GFLOP/s = "
                f"{rate_ours / ceiling:.0%} vs {rate_peer / ceiling:.0%} of the ceiling"
            )
        firsts = col(peer, "first_step_s")
        if firsts:
            lines.append(
                f"import floor / peer's median first step: {min(floor) / statistics.median(firsts):.2f}x "
                "(a fresh process cannot start faster than its imports)"
            )
        loads = [r["load_before"] for r in work.results]
        lines.append(f"load average (1 min) before each process: {min(loads):.2f} .. {max(loads):.2f}")
        lines.append("")
    return "\n".join(lines)


def _n_train(work: Work) -> int:
    return sum(1 for _ in (work.data / "train.jsonl").open())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--works", nargs="+", default=["A", "C"], choices=["A", "C"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache/peftbench/perf")
    parser.add_argument("--mirror", type=Path, default=ROOT.parent / "shared/data/hub")
    parser.add_argument(
        "--summary-only", action="store_true", help="summarise OUT/records.jsonl, run nothing"
    )
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    records = out / "records.jsonl"

    if not (PEER_DIR / "venv/bin/llamafactory-cli").exists():
        subprocess.run(["bash", str(HERE / "install_peer.sh"), str(PEER_DIR)], check=True)
    builders = {"A": lambda: build_work_a(out), "C": lambda: build_work_c(out, args.mirror)}
    works = [builders[w]() for w in args.works]

    if not args.summary_only:
        records.unlink(missing_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for work in works:
            for rep in range(args.repeats):
                base = out / "runs" / f"{stamp}-{work.name}{rep}"
                base.mkdir(parents=True)
                results = {"peer": peer_train(work, base / "peer_train")}  # A
                print(f"work {work.name} #{rep} peer: {json.dumps(results['peer'])}", flush=True)
                results["peftbench"] = ours_train(work, base / "ours")  # B
                print(f"work {work.name} #{rep} peftbench: {json.dumps(results['peftbench'])}", flush=True)
                results["peer"].update(peer_predict(work, base / "peer_train", base / "peer_predict"))
                print(f"work {work.name} #{rep} peer predict: {json.dumps(results['peer'])}", flush=True)
                for tool, r in results.items():
                    row = {"work": work.name, "repeat": rep, "tool": tool, **r}
                    with records.open("a") as f:
                        f.write(json.dumps(row) + "\n")
    rows = [json.loads(x) for x in records.read_text().splitlines()]
    for work in works:
        work.results = [r for r in rows if r["work"] == work.name]
    ceiling = matmul_ceiling()
    flops = {w.name: training_flops(w) for w in works}
    print(summarise(works, ceiling, flops, import_floor(out)))


if __name__ == "__main__":
    main()
