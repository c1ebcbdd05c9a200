import pytest
from datasets import Dataset

from bench.data.prompts import (
    IGNORE_INDEX,
    Example,
    build_prompt,
    encode_for_training,
    encode_prompts,
    read_examples,
    to_examples,
)
from bench.errors import DataError


@pytest.fixture
def sst2(compose):
    return compose("model=tiny-random", "dataset=glue/sst2").dataset


def test_rows_become_examples_with_label_words_and_the_hub_id(sst2):
    rows = Dataset.from_dict({"sentence": ["great fun ", "dull"], "label": [1, 0], "idx": [10, 11]})
    assert to_examples(rows, sst2, "train") == [
        Example("great fun", "positive", row_id="10"),
        Example("dull", "negative", row_id="11"),
    ]


def test_row_ids_without_an_id_column_or_with_repeats_are_row_indices(sst2):
    rows = Dataset.from_dict({"sentence": ["a", "b", "c"], "label": [1, 0, 1]})
    assert [e.row_id for e in to_examples(rows, sst2, "train")] == ["0", "1", "2"]
    repeated = Dataset.from_dict({"sentence": ["a", "b", "c"], "label": [1, 0, 1], "idx": [5, 5, 6]})
    assert [e.row_id for e in to_examples(repeated, sst2, "train")] == ["0", "1", "2"]


def test_dict_ids_are_joined(compose):
    multirc = compose("dataset=superglue/multirc").dataset
    rows = Dataset.from_dict(
        {
            "paragraph": ["P", "P"],
            "question": ["Q?", "Q?"],
            "answer": ["a", "b"],
            "idx": [
                {"paragraph": 3, "question": 1, "answer": 0},
                {"paragraph": 3, "question": 1, "answer": 1},
            ],
            "label": [1, 0],
        }
    )
    assert [e.row_id for e in to_examples(rows, multirc, "validation")] == ["3/1/0", "3/1/1"]


def test_rows_without_a_target_are_dropped_and_counted(sst2, compose, caplog):
    rows = Dataset.from_dict(
        {"sentence": ["a", "b", "c", "d"], "label": [1, -1, None, 0], "idx": [0, 1, 2, 3]}
    )
    examples, dropped = read_examples(rows, sst2, "train")
    assert [(e.target, e.row_id) for e in examples] == [("positive", "0"), ("negative", "3")]
    assert dropped == 2
    # a code set whose release has empty answers (CodeAlpaca): dropped, never fatal
    code = compose("dataset=code/codealpaca_py").dataset
    rows = Dataset.from_dict({"prompt": ["Add.", "Sub.", "Mul."], "response": ["a + b", "", None]})
    with caplog.at_level("INFO", logger="bench.data.prompts"):
        examples, dropped = read_examples(rows, code, "train")
    assert [(e.input, e.target, e.row_id) for e in examples] == [("Add.", "a + b", "0")] and dropped == 2
    assert "dropped 2 of 3 row(s): no target (response)" in caplog.text


def test_a_split_without_any_target_is_an_error(sst2):
    rows = Dataset.from_dict({"sentence": ["a", "b"], "label": [-1, -1]})
    with pytest.raises(
        DataError, match="split 'test': none of its 2 rows has a target .*use a labelled split"
    ):
        to_examples(rows, sst2, "test")


def test_string_labels_accepted_by_name(sst2):
    rows = Dataset.from_dict({"sentence": ["ok"], "label": ["negative"]})
    assert to_examples(rows, sst2, "train")[0].target == "negative"


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ([1, 7], r"split 'train', row 1: label id 7 is outside the label set"),
        (["positive", "meh"], r"row 1: label 'meh' is not in the label set"),
    ],
)
def test_bad_labels_name_dataset_split_and_row(sst2, labels, match):
    rows = Dataset.from_dict({"sentence": ["a", "b"], "label": labels})
    with pytest.raises(DataError, match=match) as err:
        to_examples(rows, sst2, "train")
    assert "glue/sst2" in str(err.value)


def test_missing_column_lists_columns_found(sst2):
    rows = Dataset.from_dict({"text": ["a"], "label": [0]})
    with pytest.raises(
        DataError, match=r"missing column\(s\) \['sentence'\]; columns found: \['text', 'label'\]"
    ):
        to_examples(rows, sst2, "validation")


def test_empty_input_is_an_error(sst2):
    rows = Dataset.from_dict({"sentence": ["fine", "   "], "label": [0, 1]})
    with pytest.raises(DataError, match="split 'test', row 1: empty input"):
        to_examples(rows, sst2, "test")


def test_chat_template_prompt_and_masked_labels(compose, cache_dir):
    from bench.models import load_model_and_tokenizer

    cfg = compose("model=tiny-random", "dataset=glue/sst2")
    _, tok = load_model_and_tokenizer(cfg.model, cache_dir)
    prompt = build_prompt(tok, cfg.model, cfg.dataset.instruction, "a fine film")
    assert prompt.startswith("<|im_start|>user\n" + cfg.dataset.instruction.strip() + "\n\n")
    assert prompt.endswith("a fine film<|im_end|>\n<|im_start|>assistant\n")

    encoded, n_cut = encode_for_training(
        tok, cfg.model, cfg.dataset, [Example("a fine film", "positive")], 512
    )
    assert n_cut == 0
    ids, labels = encoded[0]["input_ids"], encoded[0]["labels"]
    answer = [t for t in labels if t != IGNORE_INDEX]
    assert tok.decode(answer) == "positive<|im_end|>"
    assert labels[: len(ids) - len(answer)] == [IGNORE_INDEX] * (len(ids) - len(answer))
    assert tok.decode(ids[: len(ids) - len(answer)]) == prompt


def test_plain_prompt_without_chat_template(compose, cache_dir):
    from bench.models import load_model_and_tokenizer

    cfg = compose("model=tiny-random", "model.chat_template=false")
    _, tok = load_model_and_tokenizer(cfg.model, cache_dir)
    assert build_prompt(tok, cfg.model, "Do it.", "x") == "Do it.\n\nx\nAnswer: "


@pytest.fixture
def tiny_sst2(compose, cache_dir):
    from bench.models import load_model_and_tokenizer

    cfg = compose("model=tiny-random", "dataset=glue/sst2")
    return cfg, load_model_and_tokenizer(cfg.model, cache_dir)[1]


def _prompt_and_answer(tok, row):
    answer = [t for t in row["labels"] if t != IGNORE_INDEX]
    return tok.decode(row["input_ids"][: len(row["input_ids"]) - len(answer)]), tok.decode(answer)


def test_a_long_target_in_the_split_no_longer_cuts_a_short_rows_prompt(tiny_sst2):
    """Issue 14: the old code cut every prompt to max_len - (longest target + 1), from the left."""
    cfg, tok = tiny_sst2
    short = Example("a fine film", "positive")
    prompt = build_prompt(tok, cfg.model, cfg.dataset.instruction, short.input)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    words = " ".join(f"w{i}" for i in range(4000))
    n_target = 2048 - n_prompt // 2  # the old budget for prompts: n_prompt // 2 - 1 tokens
    long_target = tok.decode(tok(words, add_special_tokens=False)["input_ids"][:n_target])
    encoded, n_cut = encode_for_training(
        tok, cfg.model, cfg.dataset, [short, Example("solve it", long_target)], 2048
    )
    assert _prompt_and_answer(tok, encoded[0]) == (prompt, "positive<|im_end|>")
    assert n_cut == 1 and len(encoded[1]["input_ids"]) == 2048
    cut_prompt, cut_answer = _prompt_and_answer(tok, encoded[1])
    assert cut_prompt == build_prompt(tok, cfg.model, cfg.dataset.instruction, "solve it")  # prompt whole
    assert long_target.startswith(cut_answer) and "<|im_end|>" not in cut_answer  # cut at its end


def test_a_long_input_is_cut_in_its_middle_and_keeps_the_instruction(tiny_sst2):
    cfg, tok = tiny_sst2
    text = "START " + " ".join(f"w{i}" for i in range(600)) + " END"
    frame = build_prompt(tok, cfg.model, cfg.dataset.instruction, "")
    n_frame = len(tok(frame, add_special_tokens=False)["input_ids"])
    max_len = n_frame + 100
    encoded, n_cut = encode_for_training(tok, cfg.model, cfg.dataset, [Example(text, "negative")], max_len)
    prompt, answer = _prompt_and_answer(tok, encoded[0])
    assert n_cut == 1 and len(encoded[0]["input_ids"]) <= max_len and answer == "negative<|im_end|>"
    assert prompt.startswith("<|im_start|>user\n" + cfg.dataset.instruction.strip() + "\n\nSTART w0")
    assert prompt.endswith(" END<|im_end|>\n<|im_start|>assistant\n") and " w300 " not in prompt
    # Test prompts too: the input is cut, the instruction and the answer cue stay.
    prompts, ids, n_cut = encode_prompts(tok, cfg.model, cfg.dataset, [Example(text, "negative")], max_len)
    assert (
        n_cut == 1
        and len(ids[0]) <= max_len
        and prompts[0] == build_prompt(tok, cfg.model, cfg.dataset.instruction, text)
    )
    assert tok.decode(ids[0]).startswith("<|im_start|>user\n" + cfg.dataset.instruction.strip())


def test_an_instruction_longer_than_the_budget_is_a_clear_error(tiny_sst2):
    cfg, tok = tiny_sst2
    with pytest.raises(DataError, match="raise trainer.max_seq_length or shorten the instruction"):
        encode_for_training(tok, cfg.model, cfg.dataset, [Example("some text " * 20, "negative")], 16)


def test_prompt_style_is_checked_when_the_config_is_validated(compose):
    from bench.config.validate import validate
    from bench.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"dataset.prompt_style='papers' is not allowed; use one of: peftbench, paper"
    ):
        validate(compose("model=tiny-random", "dataset=glue/sst2", "dataset.prompt_style=papers"))
    with pytest.raises(ConfigError, match="demo/ticket_routing' has no paper prompt"):
        validate(compose("model=tiny-random", "dataset.prompt_style=paper"))


def test_a_long_input_and_a_long_answer_share_the_room(tiny_sst2):
    cfg, tok = tiny_sst2
    frame = build_prompt(tok, cfg.model, cfg.dataset.instruction, "")
    room = 101
    max_len = len(tok(frame, add_special_tokens=False)["input_ids"]) + room
    long_input = " ".join(f"w{i}" for i in range(500))
    long_answer = " ".join(f"a{i}" for i in range(500))
    encoded, n_cut = encode_for_training(
        tok, cfg.model, cfg.dataset, [Example(long_input, long_answer)], max_len
    )
    answer = [t for t in encoded[0]["labels"] if t != IGNORE_INDEX]
    assert n_cut == 1 and len(encoded[0]["input_ids"]) == max_len
    assert len(answer) == room - room // 2  # the input keeps room // 2 = 50 tokens, the answer 51
