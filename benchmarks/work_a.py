"""Build the shared inputs of the peer comparison's Work A, into one folder both tools read.

    python benchmarks/work_a.py OUT_DIR

- ``OUT_DIR/model``: a random-init Llama of ~34M parameters (hidden 512, 8 layers, 8 heads,
  intermediate 1376, vocab 8192) and a byte-level BPE tokenizer trained here, both ``save_pretrained``.
- ``OUT_DIR/data``: 2,000 generated sentiment examples (instruction + sentence -> positive/negative,
  ~40 tokens) and 200 test rows: ``train.jsonl`` / ``validation.jsonl`` for peftbench, and
  ``train.json`` / ``test.json`` + ``dataset_info.json`` (prompt / query / response, datasets
  ``bench_train`` / ``bench_test``) for PEFT-Factory.
Deterministic: the same OUT_DIR content every time.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_data import write_peer_data  # noqa: E402

INSTRUCTION = "Classify the sentiment of the review. Answer positive or negative."
SUBJECTS = [
    "the movie",
    "this film",
    "the acting",
    "the plot",
    "the soundtrack",
    "the ending",
    "the cast",
    "the script",
    "the director's work",
    "the photography",
]
POSITIVE = ["wonderful", "moving", "brilliant", "delightful", "superb", "charming", "gripping", "heartfelt"]
NEGATIVE = ["dull", "clumsy", "boring", "tedious", "awful", "lifeless", "predictable", "messy"]
LINKS = ["was", "felt", "seemed", "turned out", "is"]
TAILS = [
    "from start to finish",
    "for most of its length",
    "in every scene",
    "despite the hype",
    "overall",
    "again and again",
    "at the end",
    "by any measure",
]


def sentence(rng: random.Random, label: str) -> str:
    words = POSITIVE if label == "positive" else NEGATIVE
    first, second = rng.sample(words, 2)
    return (
        f"{rng.choice(SUBJECTS)} {rng.choice(LINKS)} {first} and {rng.choice(SUBJECTS)} "
        f"{rng.choice(LINKS)} {second} {rng.choice(TAILS)}"
    ).capitalize() + "."


def rows(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [
        {"text": sentence(rng, label), "label": label}
        for label in (["positive", "negative"] * (n // 2 + 1))[:n]
    ]


def build_model(folder: Path, corpus: list[str]) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=8192,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|pad|>")
    config = LlamaConfig(
        vocab_size=8192,
        hidden_size=512,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
        intermediate_size=1376,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters -> {folder}")


def main(out: Path) -> None:
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    train, test = rows(2000, seed=1), rows(200, seed=2)
    for name, split in (("train", train), ("validation", test)):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split))
    write_peer_data(data, train, test, INSTRUCTION)
    if not (out / "model" / "config.json").exists():
        build_model(out / "model", [INSTRUCTION] + [r["text"] for r in train + test])
    print(f"data: {len(train)} train, {len(test)} test rows -> {data}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
