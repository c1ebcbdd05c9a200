"""``python -m bench.plan <the overrides of a --multirun>``: what a grid will run and cost, before it runs.

For every cell of the grid (Hydra's own sweep expansion: ``hydra.sweeper.params`` of the composed config,
e.g. ``experiment=peft_bench``, plus comma lists on the command line) it prints the run key, the cell's
status in the results folder, the resolved training settings, the trainable parameters and the extra
inference FLOPs (the method applied by its provider to the model built on the meta device, see
:mod:`bench.meta_model`; no weights, no GPU), and estimates of training tokens, peak training memory and
GPU-hours on a named GPU. Every cell is validated and all errors are reported together (exit status 2).

Estimates, stated so they can be checked (``--help`` prints them):
  - tokens per row: mean of (characters of the row's fields + instruction) / 4 + 16 template tokens over
    up to 2,000 rows of the train split when its data is reachable (``data.mirror`` or shipped files),
    else Table 4's train rows times the typical length in ``TABLE4``; rows are cut at max_seq_length.
  - training FLOPs: tokens x F x 2 (forward + backward through the frozen activations) + 2 x trainable
    x tokens (the trainable weights' gradients); full fine-tuning tokens x F x 3; F = the forward FLOPs
    per token of the tuned model (its 512-token probe / 512). Validation passes (every eval_every) and
    one prefill of the test prompts are added; generated tokens are not.
  - GPU-hours: FLOPs / (peak dense bf16 FLOP/s (tf32 for fp32 runs) x utilisation) / 3600.
  - peak memory: frozen weights in model.dtype + 16 bytes per trainable parameter (fp32 weight, grad and
    two AdamW moments; full fine-tuning: 4 copies in model.dtype) + activations batch x seq x layers x
    (7 hidden + 2 kv + 4 intermediate) elements (2 bytes under bf16/fp16, 4 in fp32) + fp32 logits and
    their gradient (soft prompts: every position; others: 8 answer positions) + 1 GiB (CUDA context,
    allocator cache); seq = the longest row seen (capped at max_seq_length) + virtual tokens.
  - search=<name> (conf/search): one row per (model, method, dataset), the grid's seeds ignored. Stage 1:
    ``bench.search.trials`` (search.budget per cell, every method alike) at search.trial_seed, each
    costed as its own run with eval.validation=true eval.test=false: the test prefill replaced by
    min(held-out rows, search.max_validation_samples) validation rows of the train split's length.
    Stage 2: search.final_seeds at the tuned setting, and at the default with search.include_default;
    the choice is unknown before stage 1, so runs and hours are upper bounds (a cell that chooses its
    default runs its final seeds once; each tuned run costs the dearest trial setting's test run).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import re
import sys
import time
import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from bench import CONF_DIR
from bench.search import override_value

CHARS_PER_TOKEN = 4.0  # English text with Llama-3's / Qwen's ~128k-150k BPE vocabularies
TEMPLATE_TOKENS = 16  # chat-template headers and turn markers around a row
SAMPLE_ROWS = 2000  # rows read to measure a dataset's lengths
SPLICED_GROUPS = ("model", "method", "dataset", "metric", "logger")  # see Composer
CUDA_OVERHEAD_BYTES = 2**30
_PACKAGE = re.compile(r"^#\s*@package\s+(\S+)", re.MULTILINE)

# PEFT-Bench Table 4: train rows, test rows, and our typical tokens per row (instruction, input, answer
# and template; a guess, used only when the data is not reachable).
TABLE4: dict[str, tuple[int, int, int]] = {
    "glue/mnli": (392_702, 9_815, 90),
    "glue/qqp": (363_846, 40_430, 80),
    "glue/qnli": (104_743, 5_463, 100),
    "glue/sst2": (67_349, 872, 60),
    "glue/stsb": (5_749, 1_500, 80),
    "glue/mrpc": (3_668, 408, 100),
    "glue/rte": (2_490, 277, 120),
    "glue/cola": (8_551, 1_043, 50),
    "superglue/multirc": (27_243, 4_848, 400),
    "superglue/record": (100_730, 10_000, 330),
    "superglue/boolq": (9_427, 3_270, 180),
    "superglue/wic": (5_428, 638, 80),
    "superglue/wsc": (554, 104, 80),
    "superglue/cb": (250, 56, 120),
    "superglue/copa": (400, 100, 60),
    "others/mmlu": (99_842, 1_531, 200),
    "others/piqa": (16_113, 1_838, 100),
    "others/siqa": (33_410, 1_954, 90),
    "others/hellaswag": (39_905, 10_042, 160),
    "others/winogrande": (40_398, 1_267, 70),
    "others/obqa": (4_957, 500, 80),
    "math/mathqa": (29_837, 4_475, 140),
    "math/gsm8k": (7_473, 1_319, 240),
    "math/svamp": (700, 300, 90),
    "code/conala": (2_379, 500, 70),
    "code/codealpaca_py": (8_477, 942, 160),
    "code/apps": (5_000, 5_000, 700),
}

# PEFT-Bench Table 3: extra inference TFLOPs on Llama-3-8B-Instruct (DeepSpeed's profiler, 512 tokens),
# and that profiler's count of the base model.
TABLE3_TFLOPS = {
    "ia3": 0.31,
    "prompt_tuning": 1.67,
    "prefix_tuning": 0.01,
    "p_tuning": 1.68,
    "lora": 0.00,
    "ln_tuning": 0.00,
}
TABLE3_BASE_TFLOPS = 8.38
TABLE3_MODEL = "llama-3-8b-instruct"
# Why our counts differ from Table 3 (printed beside the comparison; README "Planning a grid").
FLOPS_NOTES = {
    "base": (
        "torch's counter gives 7.82 TFLOPs for the base (matmuls 2mnk, attention over all 512x512 "
        "positions, LM head included); DeepSpeed's profiler gave 8.38, 7.1% more per token. Element-wise "
        "ops (norms, rotary, SiLU, softmax) add ~0.01 TFLOPs, so they are not that gap."
    ),
    "ia3": (
        "IA3's scales are element-wise: 6,144 multiplications per token and layer, 1e-4 TFLOPs, which "
        "torch's counter leaves out. 0.31 is not explained by element-wise ops; it is close to the key "
        "and value projections counted a second time (0.27 TFLOPs, 0.29 in the paper's units): we do "
        "not reproduce it."
    ),
    "soft": (
        "the extra virtual tokens cost the same share of the base in both counters: ours x 8.38 / ours "
        "base reproduces Table 3 (the 'scaled' column)."
    ),
}


@dataclass(frozen=True)
class GPU:
    label: str
    bf16_flops: float  # peak dense FLOP/s with bf16/fp16 tensor cores
    tf32_flops: float  # peak dense FLOP/s for fp32 runs (TF32 tensor cores)
    memory_bytes: int


GPUS = {
    "a100-40gb": GPU("NVIDIA A100 PCIe 40GB", 312e12, 156e12, 40 * 2**30),
    "h100": GPU("NVIDIA H100 SXM 80GB", 989e12, 495e12, 80 * 2**30),
}
DEFAULT_UTILISATION = 0.3  # model FLOPs utilisation of HF Trainer PEFT runs at batch 4 (an assumption)

ESTIMATES = __doc__.split("(``--help`` prints them):")[1]

JSON_KEYS = (
    "model",
    "method",
    "dataset",
    "seed",
    "run_key",
    "status",
    "learning_rate",
    "num_train_epochs",
    "batch_size",
    "max_seq_length",
    "trainable_params",
    "extra_inference_flops",
    "est_train_tokens",
    "est_peak_memory_bytes",
    "est_gpu_hours",
)


@dataclass
class Counts:
    """What the meta model says about one (model, method settings)."""

    trainable_params: int
    total_params: int
    base_flops: int
    tuned_flops: int

    @property
    def extra_flops(self) -> int:
        return max(0, self.tuned_flops - self.base_flops)


@dataclass
class DataSize:
    train_rows: int
    test_rows: int
    tokens_per_row: float
    longest_row_tokens: int
    source: str  # mirror | files | table4


@dataclass
class Plan:
    cells: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    counts: dict[tuple[str, str], Counts] = field(default_factory=dict)  # (model, method name) -> counts
    notes: list[str] = field(default_factory=list)


# --- the grid -------------------------------------------------------------------------------------------


def _cell_label(cfg: DictConfig) -> str:
    return f"{cfg.model.name} / {cfg.method.name} / {cfg.dataset.name} / seed {cfg.seed}"


class Composer:
    """Each cell's job config exactly as Hydra composes it for a ``--multirun`` job, fast where it can be.

    Hydra composes one config in 0.2-0.45 s here (810 cells: 3-6 minutes), so the config groups a sweep
    varies (model, method, dataset, metric, logger) are loaded once per option and spliced into one
    composed base; the cell's value overrides are then applied by Hydra's own code. :meth:`check`
    composes one spliced cell per swept group with Hydra as well; if any differs (an option or experiment
    file that edits nodes beyond its own group), Hydra composes each combination of group options once.
    """

    def __init__(self, hydra, parser, base_overrides: list[str]) -> None:
        self.hydra = hydra
        self.parser = parser
        self.parsed: dict[str, Any] = {}
        self.nodes: dict[tuple[str, str], DictConfig | None] = {}
        self.splice = True
        self.working: DictConfig | None = None  # the config reused across cells (see compose)
        self.working_choices: dict[str, str] = {}
        self.composed: dict[tuple, DictConfig] = {}  # group options -> Hydra's config (see compose)
        self.undo: tuple[DictConfig, list[tuple[str, Any]]] | None = None  # see _apply
        self.base_choices = self._choices(base_overrides)
        self.base = self._hydra_compose([o for o in base_overrides if self._group(o) is not None])

    def _override(self, text: str):
        if text not in self.parsed:
            self.parsed[text] = self.parser.parse_overrides([text])[0]
        return self.parsed[text]

    def _group(self, text: str) -> str | None:
        o = self._override(text)
        return o.key_or_group if o.key_or_group in _all_groups() and o.package is None else None

    def _choices(self, cell: list[str]) -> dict[str, str]:
        return {self._group(t): self._override(t).value() for t in cell if self._group(t) is not None}

    def _hydra_compose(self, overrides: list[str]) -> DictConfig:
        from hydra.types import RunMode

        cfg = self.hydra.compose_config(
            "config", overrides, run_mode=RunMode.RUN, with_log_configuration=False
        )
        with open_dict(cfg):
            del cfg["hydra"]  # a job's config, as the task function receives it
        return cfg

    def _node(self, group: str, option: str) -> DictConfig | None:
        """The group's schema merged with its YAML (what Hydra builds), or None when the YAML has its own
        defaults list or package header (or is not a file, e.g. a plugin folder): Hydra composes those."""
        key = (group, option)
        if key not in self.nodes:
            from bench.config.schema import Config

            path = CONF_DIR / group / f"{option}.yaml"
            node = None
            header = _PACKAGE.search(path.read_text()) if path.exists() else None
            if path.exists() and (header is None or header.group(1) == group):
                raw = OmegaConf.load(path)
                if "defaults" not in raw:
                    schema = typing.get_type_hints(Config)[group]
                    node = OmegaConf.merge(OmegaConf.structured(schema), raw)
            self.nodes[key] = node
        return self.nodes[key]

    def compose(self, cell: list[str]) -> DictConfig:

        choices = self._choices(cell)
        values = [self._override(t) for t in cell if self._group(t) is None]
        # plain assignments are idempotent (adding or deleting a key twice fails), so a config can be reused
        plain = not any(v.is_add() or v.is_force_add() or v.is_delete() for v in values)
        changed = {g: o for g, o in choices.items() if self.base_choices.get(g) != o}
        nodes = {g: self._node(g, o) for g, o in changed.items()} if self.splice else {}
        if self.splice and plain and all(g in SPLICED_GROUPS and n is not None for g, n in nodes.items()):
            # One config reused across cells (a deep copy per cell costs ~60 ms); only the nodes whose
            # option changed are swapped in, then the cell's value overrides are applied.
            if self.working is None:
                self.working, self.working_choices = copy.deepcopy(self.base), dict(self.base_choices)
            cfg = self.working
            for group in SPLICED_GROUPS:
                want = choices.get(group, self.base_choices.get(group))
                if want != self.working_choices.get(group):
                    cfg[group] = nodes[group] if group in nodes else self.base[group]  # assignment copies
                    self.working_choices[group] = want
            self._apply(values, cfg)
            return cfg
        # Hydra composes each combination of group options once; cells that differ only in values
        # (e.g. the seed) reuse it with their own value overrides applied.
        key = tuple(sorted(choices.items()))
        if plain and key in self.composed:
            cfg = self.composed[key]
            self._apply(values, cfg)
            return cfg
        cfg = self._hydra_compose(cell)
        if plain:
            self.composed[key] = cfg
        return cfg

    def _apply(self, values: list, cfg: DictConfig) -> None:
        """Hydra's own step after composing, on a config reused across cells. The previous cell's value
        overrides are undone first: a cell never inherits a key that only an earlier cell set (a sweep's
        cells all set the same keys; a search's trials set more than its final runs)."""
        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        if self.undo is not None:
            last, undo = self.undo
            for key, raw in reversed(undo):
                OmegaConf.update(last, key, raw, merge=False)
        self.undo = (
            cfg,
            [(v.key_or_group, raw) for v in values if (raw := _raw(cfg, v.key_or_group)) is not _UNSET],
        )
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)

    def order(self, cells: list[list[str]]) -> list[int]:
        """Cell indices ordered so the group with the most options changes least often (fewer swaps)."""
        choices = [self._choices(c) for c in cells]
        groups = sorted({g for c in choices for g in c}, key=lambda g: -len({c.get(g) for c in choices}))
        return sorted(range(len(cells)), key=lambda i: [str(choices[i].get(g)) for g in groups])

    def check(self, cells: list[list[str]]) -> None:
        """Compose with Hydra too, and compare: for each swept group the first cell that differs from the
        base in that group only (so its node is spliced), and the last cell. Any difference (e.g. an
        experiment file that edits a swept group's node) stops splicing."""
        probes = {len(cells) - 1}
        for group in {g for c in cells for g, o in self._choices(c).items() if self.base_choices.get(g) != o}:
            for index, cell in enumerate(cells):
                differ = {g for g, o in self._choices(cell).items() if self.base_choices.get(g) != o}
                if differ == {group}:
                    probes.add(index)
                    break
        for index in sorted(probes):
            ours = OmegaConf.to_container(self.compose(cells[index]))
            if ours != OmegaConf.to_container(self._hydra_compose(cells[index])):
                self.splice, self.working = False, None
                return


_UNSET = object()


def _raw(cfg: DictConfig, key: str) -> Any:
    """The value at a dotted key as written (an interpolation stays one), or _UNSET where there is none."""
    parent_key, _, last = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    node = parent._get_node(last, validate_access=False) if isinstance(parent, DictConfig) else None
    if node is None:
        return _UNSET
    return OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node._value()


def _all_groups() -> set[str]:
    from bench.config.choices import GROUPS

    return {*GROUPS, "search"}  # search=<name> selects a config group (conf/search), not a value


def expand_grid(args: list[str]) -> tuple[Composer, list[list[str]]]:
    """The grid's cells as Hydra's BasicSweeper lists them (each a list of ``key=value`` overrides)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    hydra = GlobalHydra.instance().hydra
    master = hydra.compose_config("config", args, run_mode=RunMode.MULTIRUN, with_log_configuration=False)
    params = master.hydra.sweeper.params or {}
    parser = OverridesParser.create(config_loader=hydra.config_loader)
    overrides = parser.parse_overrides([f"{k}={v}" for k, v in params.items()] + list(args))
    cells = BasicSweeper.split_arguments(overrides, None)[0]
    composer = Composer(hydra, parser, cells[0])
    composer.check(cells)
    return composer, cells


# --- counts ---------------------------------------------------------------------------------------------


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Counter_:
    """Trainable parameters and FLOPs per (architecture, method settings), in memory and on disk."""

    def __init__(self, cache_dir: str | None) -> None:
        from importlib import metadata

        self.versions = [metadata.version(p) for p in ("torch", "transformers", "peft")]
        self.memory: dict[str, Counts] = {}
        self.base: dict[str, tuple[int, int]] = {}
        self.folder = Path(cache_dir).expanduser() / "plan" if cache_dir else None

    def counts(self, cfg: DictConfig, probe: int) -> Counts:
        from bench.meta_model import architecture_of

        arch = architecture_of(cfg.model)
        method = OmegaConf.to_container(cfg.method, resolve=True)
        key = _digest(
            {"arch": arch, "dtype": cfg.model.dtype, "method": method, "probe": probe, "v": self.versions}
        )
        if key in self.memory:
            return self.memory[key]
        path = self.folder / f"{key}.json" if self.folder else None
        if path is not None and path.exists():
            counts = Counts(**json.loads(path.read_text()))
        else:
            counts = self._measure(cfg, arch, probe)
            if path is not None:
                from bench.results import write_json_atomic

                write_json_atomic(path, counts.__dict__)
        self.memory[key] = counts
        return counts

    def _measure(self, cfg: DictConfig, arch: dict, probe: int) -> Counts:
        from bench.meta_model import build_meta_model, meta_forward_flops
        from bench.methods import apply_method, count_parameters

        arch_key = _digest({"arch": arch, "dtype": cfg.model.dtype, "probe": probe})
        if arch_key not in self.base:
            base_model = build_meta_model(cfg.model)
            self.base[arch_key] = (count_parameters(base_model)[1], meta_forward_flops(base_model, probe))
        base_total, base_flops = self.base[arch_key]
        if cfg.method.provider == "none":
            return Counts(0, base_total, base_flops, base_flops)
        model = apply_method(build_meta_model(cfg.model), cfg.method)
        trainable, total = count_parameters(model)
        return Counts(trainable, total, base_flops, meta_forward_flops(model, probe))


# --- data sizes -----------------------------------------------------------------------------------------


def _row_chars(row: dict, ds: DictConfig) -> int:
    fields = [*ds.input_fields, ds.label_field]
    if not all(f in row for f in fields):
        fields = list(row)  # reshaped by a preprocessor: every column of the raw row
    chars = 0
    for name in fields:
        value = row.get(name)
        if (
            name == ds.label_field
            and isinstance(value, int)
            and ds.label_names
            and 0 <= value < len(ds.label_names)
        ):
            value = ds.label_names[value]
        chars += len(str(value)) if value is not None else 0
    return chars + len(ds.instruction or "") + len(ds.input_template or "")


def _rows_of(ds: DictConfig, mirror: str | None) -> tuple[int, int, list[dict], str] | None:
    """(train rows, test rows, sampled train rows, source) when the data is on this machine."""
    from bench import PROJECT_DIR
    from bench.data.loading import mirror_path

    if ds.data_dir:
        folder = Path(ds.data_dir)
        folder = folder if folder.is_absolute() else PROJECT_DIR / folder
        train, test = folder / f"{ds.train_split}.jsonl", folder / f"{ds.test_split}.jsonl"
        if not (train.exists() and test.exists()):
            return None
        rows = [json.loads(line) for line in train.read_text().splitlines() if line.strip()]
        n_test = sum(1 for line in test.read_text().splitlines() if line.strip())
        return len(rows), n_test, rows[:: max(1, len(rows) // SAMPLE_ROWS)], "files"
    if not (mirror and ds.hub_id):
        return None
    train = mirror_path(mirror, ds.hub_id, ds.hub_config, ds.train_split)
    test = mirror_path(mirror, ds.hub_id, ds.hub_config, ds.test_split)
    if not (train.exists() and test.exists()):
        return None
    import pyarrow.parquet as pq

    table = pq.read_table(train)
    n = table.num_rows
    picks = list(range(0, n, max(1, n // SAMPLE_ROWS)))
    return n, pq.ParquetFile(test).metadata.num_rows, table.take(picks).to_pylist(), "mirror"


def data_size(cfg: DictConfig) -> DataSize | None:
    ds = cfg.dataset
    limit = int(cfg.trainer.max_seq_length)
    found = _rows_of(ds, cfg.data.mirror)
    if found is not None:
        n_train, n_test, rows, source = found
        lengths = [min(limit, _row_chars(r, ds) / CHARS_PER_TOKEN + TEMPLATE_TOKENS) for r in rows]
        per_row, longest = sum(lengths) / max(1, len(lengths)), int(max(lengths, default=0))
    elif ds.name in TABLE4:
        n_train, n_test, typical = TABLE4[ds.name]
        source, per_row, longest = "table4", float(min(limit, typical)), min(limit, 3 * typical)
    else:
        return None
    if ds.max_train_samples:
        n_train = min(n_train, int(ds.max_train_samples))
    if ds.max_eval_samples:
        n_test = min(n_test, int(ds.max_eval_samples))
    return DataSize(n_train, n_test, per_row, longest, source)


# --- estimates ------------------------------------------------------------------------------------------


def _dtype_bytes(name: str) -> int:
    return {"float32": 4, "bfloat16": 2, "float16": 2}.get(name, 4)


def predicted_rows(cfg: DictConfig, size: DataSize, n_val: int) -> int:
    """Rows the run predicts after training: the test split (unless ``eval.test=false``) plus, with
    ``eval.validation=true`` (a search trial), the held-out rows capped at ``eval.max_validation_samples``."""
    rows = size.test_rows if cfg.eval.get("test", True) else 0
    if cfg.eval.get("validation", False):
        cap = cfg.eval.get("max_validation_samples")
        rows += n_val if cap is None else min(n_val, int(cap))
    return rows


def estimate(cfg: DictConfig, counts: Counts, size: DataSize | None, gpu: GPU, utilisation: float) -> dict:
    from bench.meta_model import architecture_of

    t, probe = cfg.trainer, int(cfg.metric.pscp.probe_tokens)
    arch = architecture_of(cfg.model)
    full, trains = cfg.method.provider == "full", cfg.method.provider != "none"
    half = cfg.hardware.precision in ("bf16", "fp16")
    soft = cfg.method.family == "soft_prompt"
    virtual = int(cfg.method.options.get("num_virtual_tokens", 0) or 0) if soft else 0

    weight_bytes = _dtype_bytes(cfg.model.dtype)
    frozen = counts.total_params - counts.trainable_params
    memory = frozen * weight_bytes + counts.trainable_params * (4 * weight_bytes if full else 16)
    seq = min(int(t.max_seq_length), size.longest_row_tokens if size else int(t.max_seq_length)) + virtual
    if trains:
        h, layers, inter = arch["hidden_size"], arch["num_hidden_layers"], arch["intermediate_size"]
        head_dim = arch.get("head_dim") or h // arch["num_attention_heads"]
        kv = arch.get("num_key_value_heads", arch["num_attention_heads"]) * head_dim
        per_token_layer = 7 * h + 2 * kv + 4 * inter
        memory += t.batch_size * seq * layers * per_token_layer * (2 if half else 4)
        memory += t.batch_size * (seq if soft else 8) * arch["vocab_size"] * 4 * 2
    memory += CUDA_OVERHEAD_BYTES

    out = {"est_train_tokens": None, "est_gpu_hours": None, "est_train_flops": None, "tokens_source": None}
    if size is not None:
        n_val = int(round(size.train_rows * cfg.dataset.val_fraction))
        n_train = size.train_rows - n_val
        per_epoch = max(1, math.ceil(n_train / t.batch_size) // t.gradient_accumulation_steps)
        steps = int(t.max_steps) if t.max_steps > 0 else max(1, math.ceil(t.num_train_epochs * per_epoch))
        samples = (
            steps * t.batch_size * t.gradient_accumulation_steps
            if t.max_steps > 0
            else t.num_train_epochs * n_train
        )
        tokens = samples * size.tokens_per_row if trains else 0.0
        per_token = counts.tuned_flops / probe
        train_flops = tokens * per_token * (3 if full else 2) + (
            0 if full else 2 * counts.trainable_params * tokens
        )
        every = float(t.eval_every)
        evals = (math.ceil(1 / every) if every <= 1 else steps // int(every)) if trains and n_val else 0
        other = (evals * n_val + predicted_rows(cfg, size, n_val)) * size.tokens_per_row * per_token
        peak = gpu.bf16_flops if half else gpu.tf32_flops
        out.update(
            est_train_tokens=int(tokens),
            est_train_flops=float(train_flops),
            est_gpu_hours=(train_flops + other) / (peak * utilisation) / 3600,
            tokens_source=size.source,
        )
    out.update(est_peak_memory_bytes=int(memory), oom_risk=bool(memory > gpu.memory_bytes))
    return out


# --- status ---------------------------------------------------------------------------------------------


def status_of(results_dir: str | Path, key: str) -> str:
    """new / done / failed / running, from the run folder's result.json (as a re-launch reads it)."""
    from bench.results import read_result

    record = read_result(Path(results_dir) / key / "result.json")
    if not record:
        return "new"
    status = record.get("status")
    return {"success": "done", "running": "running"}.get(status, "failed")


# --- the plan -------------------------------------------------------------------------------------------


def make_plan(args: list[str], gpu: GPU, utilisation: float) -> Plan:
    composer, cells = expand_grid(args)
    plan = Plan()
    rows = _plan_rows(composer, cells, gpu, utilisation, plan)
    plan.cells = [rows[i] for i in sorted(rows)]  # the sweep's own order
    return plan


def _plan_rows(
    composer: Composer, cells: list[list[str]], gpu: GPU, utilisation: float, plan: Plan
) -> dict[int, dict[str, Any]]:
    """One row per cell that composes and validates (keyed by its index in ``cells``); the others are
    added to ``plan.errors``, and ``plan.counts`` and ``plan.notes`` are filled."""
    from bench.config.run_key import run_key
    from bench.config.validate import validate
    from bench.errors import ConfigError
    from bench.training import effective_learning_rate

    counter = Counter_(composer.base.paths.cache_dir)
    validated: dict[tuple[str, ...], str | None] = {}
    sizes: dict[tuple[str, ...], DataSize | None] = {}
    counted: dict[tuple[str, ...], Counts] = {}
    rows: dict[int, dict[str, Any]] = {}
    for index in composer.order(cells):
        overrides = cells[index]
        try:
            cfg = composer.compose(overrides)
        except Exception as err:  # noqa: BLE001  (a cell that does not compose is one more error)
            plan.errors.append(f"{' '.join(overrides)}: {type(err).__name__}: {str(err).splitlines()[0]}")
            continue
        label = _cell_label(cfg)
        # A cell's config is a function of its overrides: the seed changes only the run key, the dataset
        # nothing that is counted on the model, the method nothing about the data.
        not_seed = tuple(o for o in overrides if not o.startswith("seed="))
        try:
            key = run_key(cfg)
            if not_seed not in validated:
                device = cfg.hardware.device
                cfg.hardware.device = "auto"  # planning happens away from the GPUs it plans for
                try:
                    validate(cfg)
                    validated[not_seed] = None
                except ConfigError as err:
                    validated[not_seed] = str(err)
                finally:
                    cfg.hardware.device = device
            if validated[not_seed]:
                raise ConfigError(validated[not_seed])
            ckey = tuple(o for o in not_seed if not o.startswith("dataset="))
            if ckey not in counted:
                counted[ckey] = counter.counts(cfg, int(cfg.metric.pscp.probe_tokens))
            counts = counted[ckey]
        except Exception as err:  # noqa: BLE001  (every cell's problem is reported, then exit 2)
            plan.errors.append(f"{label}: {type(err).__name__}: {err}")
            continue
        dkey = tuple(o for o in not_seed if not o.startswith("method="))
        if dkey not in sizes:
            sizes[dkey] = size = data_size(cfg)
            paper = TABLE4.get(cfg.dataset.name, (None,))[0]
            capped = cfg.dataset.max_train_samples is not None
            if size and size.source != "table4" and paper and size.train_rows != paper and not capped:
                plan.notes.append(
                    f"{cfg.dataset.name}: {size.train_rows:,} train rows in the {size.source}; "
                    f"Table 4: {paper:,}"
                )
        plan.counts[(cfg.model.name, cfg.method.name)] = counts
        row = {
            "model": cfg.model.name,
            "method": cfg.method.name,
            "dataset": cfg.dataset.name,
            "seed": int(cfg.seed),
            "run_key": key,
            "status": status_of(cfg.paths.results_dir, key),
            "learning_rate": effective_learning_rate(cfg),
            "num_train_epochs": float(cfg.trainer.num_train_epochs),
            "batch_size": int(cfg.trainer.batch_size),
            "max_seq_length": int(cfg.trainer.max_seq_length),
            "trainable_params": counts.trainable_params,
            "extra_inference_flops": counts.extra_flops,
            **estimate(cfg, counts, sizes[dkey], gpu, utilisation),
            "total_params": counts.total_params,
            "max_steps": int(cfg.trainer.max_steps),
        }
        rows[index] = row
    if composer.composed:
        plan.notes.append(
            f"Hydra composed {len(composer.composed)} combinations of the swept options one by one: an "
            "option or experiment file edits nodes beyond its own group, so splicing is not exact"
        )
    return rows


# --- a search (search=<name>): stage-1 trials and stage-2 runs ------------------------------------------


def setting_overrides(settings: dict[str, Any]) -> list[str]:
    return [f"{key}={override_value(value)}" for key, value in settings.items()]


def stage1_overrides(search: Any, settings: dict[str, Any]) -> list[str]:
    """A trial's overrides on top of its cell, as ``python -m bench.search`` launches it: one seed, no test
    split, the validation rows predicted (capped) for the headline objective (the loss objective reads
    the training's validation loss and predicts nothing), the trial's settings."""
    headline = search.objective == "headline"
    cap = search.max_validation_samples if headline else None
    return [
        f"seed={search.trial_seed}",
        f"eval.validation={override_value(headline)}",
        "eval.test=false",
        f"eval.max_validation_samples={override_value(cap)}",
        *setting_overrides(settings),
    ]


def _sum(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else float(sum(values))  # type: ignore[arg-type]


def make_search_plan(args: list[str], gpu: GPU, utilisation: float) -> Plan:
    """One row per searched (model, method, dataset): its stage-1 trials (``bench.search.trials``: the
    same budget for every method, one seed, validation only) and its stage-2 runs (the final seeds at the
    chosen setting, and at the default one with ``include_default``), with their estimated cost.

    The grid's seeds do not matter (a search uses ``search.trial_seed`` and ``search.final_seeds``). The
    chosen setting is unknown before stage 1, so stage 2 is an upper bound: two runs per final seed
    (a cell that chooses its default setting runs them once), each tuned run costed at the dearest trial
    setting's test run.
    """
    from bench.errors import ConfigError
    from bench.search import check_search, refused_overrides, trials

    composer, grid = expand_grid(args)
    plan = Plan()
    bases = list(dict.fromkeys(tuple(o for o in cell if not o.startswith("seed=")) for cell in grid))
    jobs: list[list[str]] = []
    layout = []
    for base in bases:
        try:
            cfg = composer.compose(list(base))
            if cfg.get("search") is None:
                raise ConfigError("no search: add search=<name> (conf/search)")
            search = OmegaConf.to_object(cfg.search)
            check_search(search)
            # the grid's seeds are ignored here (the search's own are planned); its other keys must not clash
            own = [a for a in args if not re.match(r"^\+{0,2}(search[.=]|seed=)", a)]
            refused = refused_overrides(search, own)
            if refused:
                raise ConfigError("; ".join(refused))
            family = str(cfg.method.family)
            names = (str(cfg.model.name), str(cfg.method.name), family, str(cfg.dataset.name))
            if float(cfg.dataset.val_fraction) <= 0:
                raise ConfigError(
                    "dataset.val_fraction=0 holds out no validation rows, and a search scores its trials "
                    "on them only; set it above 0"
                )
            if names in {n for n, *_ in layout}:
                raise ConfigError(
                    "appears twice in the grid: a search's cells are (model, method, dataset); sweep other "
                    "settings in separate searches"
                )
            settings = trials(search, family)
        except Exception as err:  # noqa: BLE001  (every cell's problem is reported, then exit 2)
            plan.errors.append(f"{' '.join(base)}: {type(err).__name__}: {str(err).splitlines()[0]}")
            continue

        def add(cells: list[list[str]]) -> list[int]:
            jobs.extend(cells)
            return list(range(len(jobs) - len(cells), len(jobs)))

        seeds = [int(s) for s in search.final_seeds]
        layout.append(
            (
                names,
                search,
                settings,
                add([[*base, *stage1_overrides(search, s)] for s in settings]),
                add([[*base, f"seed={seed}"] for seed in seeds]) if search.include_default else [],
                add([[*base, f"seed={seeds[0]}", *setting_overrides(s)] for s in settings]),
            )
        )
    rows = _plan_rows(composer, jobs, gpu, utilisation, plan) if jobs else {}
    for (model, method, family, dataset), search, settings, trial_ix, default_ix, tuned_ix in layout:
        if any(i not in rows for i in (*trial_ix, *default_ix, *tuned_ix)):
            continue  # its invalid trial or run is among plan.errors
        trial_rows, default_rows = [rows[i] for i in trial_ix], [rows[i] for i in default_ix]
        tuned = [rows[i] for i in tuned_ix]
        n_final = len(search.final_seeds)
        tuned_hours = [r["est_gpu_hours"] for r in tuned]
        tuned_max = None if any(h is None for h in tuned_hours) else max(tuned_hours) * n_final
        everything = [*trial_rows, *default_rows, *tuned]
        plan.cells.append(
            {
                "model": model,
                "method": method,
                "method_family": family,
                "dataset": dataset,
                "search": search.name,
                "objective": search.objective,
                "budget": int(search.budget),
                "trials": len(trial_rows),
                "trial_settings": settings,
                "trial_learning_rates": [r["learning_rate"] for r in trial_rows],
                "trial_run_keys": [r["run_key"] for r in trial_rows],
                "trial_status": dict(Counter(r["status"] for r in trial_rows)),
                "trial_seed": int(search.trial_seed),
                "max_validation_samples": search.max_validation_samples,
                "stage1_gpu_hours": _sum([r["est_gpu_hours"] for r in trial_rows]),
                "final_seeds": [int(s) for s in search.final_seeds],
                "include_default": bool(search.include_default),
                "stage2_default_runs": len(default_rows),
                "stage2_tuned_runs": n_final,
                "stage2_runs_max": len(default_rows) + n_final,
                "default_run_keys": [r["run_key"] for r in default_rows],
                "default_status": dict(Counter(r["status"] for r in default_rows)),
                "stage2_gpu_hours_max": _sum([*(r["est_gpu_hours"] for r in default_rows), tuned_max]),
                "est_peak_memory_bytes": max(r["est_peak_memory_bytes"] for r in everything),
                "oom_risk": any(r["oom_risk"] for r in everything),
            }
        )
    return plan


SEARCH_JSON_KEYS = (
    "model",
    "method",
    "method_family",
    "dataset",
    "search",
    "budget",
    "trials",
    "trial_settings",
    "trial_learning_rates",
    "trial_run_keys",
    "trial_status",
    "stage1_gpu_hours",
    "final_seeds",
    "stage2_default_runs",
    "stage2_tuned_runs",
    "stage2_runs_max",
    "default_run_keys",
    "stage2_gpu_hours_max",
    "est_peak_memory_bytes",
    "oom_risk",
)


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}" if value >= 0.01 or value == 0 else f"{value:.1g}"


def search_table(plan: Plan) -> str:
    head = ("model", "method", "family", "dataset", "trials", "trial lr", "stage-1 GPU-h", "stage-2 runs",
            "stage-2 GPU-h", "mem GB", "")  # fmt: skip
    rows = [head]
    for c in plan.cells:
        lrs = [lr for lr in c["trial_learning_rates"] if lr is not None]
        done = c["trial_status"].get("done", 0)
        rows.append((
            c["model"], c["method"], c["method_family"], c["dataset"],
            f"{c['trials']}" + (f" ({done} done)" if done else ""),
            f"{min(lrs):.3g}-{max(lrs):.3g}" if lrs else "-", _hours(c["stage1_gpu_hours"]),
            f"<={c['stage2_runs_max']}", "<=" + _hours(c["stage2_gpu_hours_max"]),
            f"{c['est_peak_memory_bytes'] / 1e9:.1f}", "OOM?" if c["oom_risk"] else "",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def search_totals(plan: Plan, gpu: GPU, utilisation: float, seconds: float) -> str:
    cells = plan.cells
    trials_n = sum(c["trials"] for c in cells)
    stage2 = sum(c["stage2_runs_max"] for c in cells)
    tuned = sum(c["stage2_tuned_runs"] for c in cells)
    hours1 = sum(c["stage1_gpu_hours"] or 0.0 for c in cells)
    hours2 = sum(c["stage2_gpu_hours_max"] or 0.0 for c in cells)
    unknown = sum(c["stage1_gpu_hours"] is None or c["stage2_gpu_hours_max"] is None for c in cells)
    per_method: Counter[str] = Counter()
    for c in cells:
        per_method[c["method"]] += c["trials"]
    searches = sorted({c["search"] for c in cells})
    caps = sorted({str(c["max_validation_samples"]) for c in cells})
    settings = "the tuned setting" + (" and the default" if stage2 > tuned else "")
    unknown_text = f" ({unknown} cells without data sizes not counted)" if unknown else ""
    lines = [
        f"search {', '.join(searches)}: {len(cells)} cells; errors: {len(plan.errors)}",
        f"stage 1: {trials_n} trials (one seed each, validation only: at most {'/'.join(caps)} validation "
        "rows predicted per trial, the test split never); per method: "
        + ", ".join(f"{m} {n}" for m, n in sorted(per_method.items())),
        f"stage 2: at most {stage2} runs (final seeds x {settings}); an upper bound: a cell whose chosen "
        "setting is its default runs its final seeds once",
        f"estimated GPU-hours on {gpu.label} at {utilisation:.0%} utilisation: stage 1 {hours1:,.2f}, "
        f"stage 2 at most {hours2:,.2f}{unknown_text}",
        f"cells likely to run out of {gpu.memory_bytes / 2**30:.0f} GiB: {sum(c['oom_risk'] for c in cells)}",
        f"planned in {seconds:.1f} s",
    ]
    return "\n".join(lines + [f"note: {n}" for n in plan.notes])


# --- output ---------------------------------------------------------------------------------------------


def _fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def table(plan: Plan) -> str:
    head = ("model", "method", "dataset", "seed", "status", "lr", "ep", "bs", "seq", "trainable",
            "+TFLOPs", "train tokens", "mem GB", "GPU-h", "")  # fmt: skip
    rows = [head]
    for c in plan.cells:
        rows.append((
            c["model"], c["method"], c["dataset"], str(c["seed"]), c["status"], f"{c['learning_rate']:g}",
            f"{c['num_train_epochs']:g}", str(c["batch_size"]), str(c["max_seq_length"]),
            _fmt_int(c["trainable_params"]), f"{c['extra_inference_flops'] / 1e12:.3f}",
            _fmt_int(c["est_train_tokens"]), f"{c['est_peak_memory_bytes'] / 1e9:.1f}",
            "-" if c["est_gpu_hours"] is None else f"{c['est_gpu_hours']:.2f}",
            "OOM?" if c["oom_risk"] else "",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def totals(plan: Plan, gpu: GPU, utilisation: float, seconds: float) -> str:
    status = Counter(c["status"] for c in plan.cells)
    hours = sum(c["est_gpu_hours"] or 0.0 for c in plan.cells)
    unknown = sum(c["est_gpu_hours"] is None for c in plan.cells)
    oom = sum(c["oom_risk"] for c in plan.cells)
    lines = [
        f"cells: {len(plan.cells)} ({', '.join(f'{k} {v}' for k, v in sorted(status.items()))}); "
        f"errors: {len(plan.errors)}",
        f"estimated GPU-hours on {gpu.label} at {utilisation:.0%} utilisation: {hours:,.1f}"
        + (f" ({unknown} cells without data sizes not counted)" if unknown else ""),
        f"cells likely to run out of {gpu.memory_bytes / 2**30:.0f} GiB: {oom}",
        f"planned in {seconds:.1f} s",
    ]
    return "\n".join(lines + [f"note: {n}" for n in plan.notes])


def flops_table(plan: Plan) -> str | None:
    """Our extra-FLOPs counts beside PEFT-Bench Table 3, for the six methods the grid holds."""
    rows = [(m, meth, c) for (m, meth), c in sorted(plan.counts.items()) if meth in TABLE3_TFLOPS]
    if not rows:
        return None
    out = [
        "extra inference TFLOPs (512 tokens, tuned - base) beside PEFT-Bench Table 3 (Llama-3-8B-Instruct):",
        f"  {'model':<22}{'method':<16}{'ours':>8}{'scaled':>8}{'Table 3':>9}  note",
    ]
    for model, method, c in rows:
        ours = c.extra_flops / 1e12
        paper, scaled, note = None, None, ""
        if model == TABLE3_MODEL:  # Table 3 is about this model only
            paper = TABLE3_TFLOPS[method]
            scaled = ours * TABLE3_BASE_TFLOPS / (c.base_flops / 1e12)
            if abs(ours - paper) > 0.05:
                note = FLOPS_NOTES["ia3"] if method == "ia3" else FLOPS_NOTES["soft"]
        paper_text = "-" if paper is None else f"{paper:.2f}"
        scaled_text = "-" if scaled is None else f"{scaled:.3f}"
        out.append(f"  {model:<22}{method:<16}{ours:>8.3f}{scaled_text:>8}{paper_text:>9}  {note}".rstrip())
    bases = {m: c.base_flops / 1e12 for (m, _), c in plan.counts.items()}
    for model, base in sorted(bases.items()):
        ref = f" (Table 3's profiler: {TABLE3_BASE_TFLOPS})" if model == TABLE3_MODEL else ""
        out.append(f"  base {model}: {base:.3f} TFLOPs{ref}")
    if TABLE3_MODEL in bases:
        out.append(f"  scaled = ours x {TABLE3_BASE_TFLOPS} / our base count. {FLOPS_NOTES['base']}")
    return "\n".join(out)


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.plan",
        description="Plan a grid without running it: the same overrides as `python -m bench --multirun`.",
        epilog="Estimates:" + ESTIMATES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--gpu", choices=sorted(GPUS), default="a100-40gb", help="GPU the hours are for")
    parser.add_argument("--utilisation", type=float, default=DEFAULT_UTILISATION, help="share of peak FLOP/s")
    parser.add_argument("--multirun", "-m", action="store_true", help="accepted and ignored")
    opts, rest = parser.parse_known_args(argv)
    unknown = [a for a in rest if a.startswith("-")]
    if unknown:
        parser.error(f"unrecognised options: {' '.join(unknown)}")
    if not 0 < opts.utilisation <= 1:
        parser.error(f"--utilisation={opts.utilisation} must be in (0, 1]")
    return opts, rest


def main(argv: list[str] | None = None) -> int:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench.config.choices import checked_overrides
    from bench.config.run_key import register_resolver
    from bench.config.schema import register_configs

    opts, args = _parse(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    args = checked_overrides(args, "bench.plan")
    if args is None:
        return 2
    register_configs()
    register_resolver()
    gpu = GPUS[opts.gpu]
    searching = any(re.match(r"^\+{0,2}search=(?!null$)", a) for a in args)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            plan = (make_search_plan if searching else make_plan)(args, gpu, opts.utilisation)
        except Exception as err:  # noqa: BLE001  (a composition error concerns every cell)
            print(f"bench.plan: the grid does not compose: {type(err).__name__}: {err}", file=sys.stderr)
            return 2
    seconds = time.perf_counter() - start
    if searching:
        return _print_search(plan, opts, gpu, seconds)
    summary = [totals(plan, gpu, opts.utilisation, seconds)]
    flops = flops_table(plan)
    if flops:
        summary.append(flops)
    if opts.format == "json":
        for cell in plan.cells:
            print(json.dumps(cell))
        print("\n".join(summary), file=sys.stderr)
    else:
        print(table(plan))
        print("\n".join(summary))
    return _errors(plan)


def _print_search(plan: Plan, opts: argparse.Namespace, gpu: GPU, seconds: float) -> int:
    summary = search_totals(plan, gpu, opts.utilisation, seconds)
    if opts.format == "json":
        for cell in plan.cells:
            print(json.dumps(cell))
        print(summary, file=sys.stderr)
    else:
        print(search_table(plan))
        print(summary)
    return _errors(plan)


def _errors(plan: Plan) -> int:
    """Name every invalid cell on stderr: exit status 2 if there are any, else 0."""
    if not plan.errors:
        return 0
    print(f"bench.plan: {len(plan.errors)} cell(s) are invalid:", file=sys.stderr)
    for line in plan.errors:
        print(f"  {line}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
