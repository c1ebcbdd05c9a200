"""Row reshaping functions on literal rows, and the errors bad rows give (dataset, split, row named)."""

from __future__ import annotations

import pytest
from datasets import Dataset

from bench.data.preprocess import (
    PREPROCESSORS,
    format_number,
    gsm8k,
    mathqa_options,
    options_text,
    record,
    wsc,
)
from bench.data.prompts import read_examples, to_examples
from bench.errors import DataError
from bench.registry import RegistryError


def test_options_and_numbers():
    assert options_text(["x ", " y"]) == "A. x\nB. y"
    assert [format_number(v) for v in (51.0, 2.5, 3.799999952316284, 0.0, 4.25)] == [
        "51",
        "2.5",
        "3.8",
        "0",
        "4.25",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a ) 38 , b ) 27.675 , c ) 30 , d ) data inadequate , e ) none",
            ["38", "27.675", "30", "data inadequate", "none"],
        ),
        ("['a ) 1 , 2', 'b ) 3', 'c ) 4', 'd ) 5', 'e ) 6']", ["1 , 2", "3", "4", "5", "6"]),
        (
            "a ) rs . 1,200 , b ) 12 : 5 , c ) 1 / 3 , d ) 0 , e ) 9",
            ["rs . 1,200", "12 : 5", "1 / 3", "0", "9"],
        ),
    ],
)
def test_mathqa_options(text, expected):
    assert mathqa_options(text) == expected


def test_mathqa_unreadable_options():
    with pytest.raises(ValueError, match="cannot read the options"):
        mathqa_options("1, 2, 3")


def test_wsc_marks_multiword_spans():
    row = {"text": "The big dog chased the cat until it slept .", "span1_index": 0, "span2_index": 7,
           "span1_text": "The big dog", "span2_text": "it"}  # fmt: skip
    assert wsc(row)["marked_text"] == "[The big dog] chased the cat until *it* slept ."
    with pytest.raises(ValueError, match="outside the text"):
        wsc({**row, "span2_index": 12})


def test_record_cleans_highlights_and_keeps_distinct_golds():
    row = {"passage": "Body text.@highlight\nFirst point@highlight\nSecond", "query": "@placeholder won",
           "entities": ["A", "B", "A"], "answers": ["B", "A", "B"]}  # fmt: skip
    out = record(row)
    assert out["passage"] == "Body text.\n- First point\n- Second"
    assert (out["entities"], out["answer"], out["answers"]) == ("A, B", "B", ["B", "A"])


def test_gsm8k_needs_the_final_answer_line():
    assert gsm8k({"question": "q", "answer": "2 * 3 = <<2*3=6>>6\n#### 6"})["answer"] == "2 * 3 = 6\n#### 6"
    with pytest.raises(ValueError, match="####"):
        gsm8k({"question": "q", "answer": "6"})


def test_unknown_preprocessor_suggests_close_names():
    with pytest.raises(RegistryError, match="Unknown preprocessor 'gsm8'. Did you mean 'gsm8k'"):
        PREPROCESSORS.get("gsm8")


def test_preprocessed_dataset_missing_column_lists_columns_found(compose):
    ds = compose("dataset=math/gsm8k").dataset
    rows = Dataset.from_dict({"question": ["q"], "solution": ["#### 1"]})
    with pytest.raises(
        DataError,
        match=r"dataset 'math/gsm8k', split 'test', row 0: missing column 'answer' \(preprocess 'gsm8k'\); "
        r"columns found: \['question', 'solution'\]",
    ):
        to_examples(rows, ds, "test")


def test_bad_row_in_a_preprocessed_dataset_names_the_row(compose):
    ds = compose("dataset=math/gsm8k").dataset
    rows = Dataset.from_dict({"question": ["q1", "q2"], "answer": ["#### 1", "no final line"]})
    with pytest.raises(DataError, match=r"dataset 'math/gsm8k', split 'train', row 1: .*####"):
        to_examples(rows, ds, "train")


def test_multiple_choice_label_outside_the_options(compose):
    ds = compose("dataset=others/mmlu").dataset
    rows = Dataset.from_dict({"question": ["q"], "subject": [""], "choices": [["a", "b"]], "answer": [3]})
    with pytest.raises(
        DataError, match=r"split 'validation', row 0: answer index 3 is outside the 2 options"
    ):
        to_examples(rows, ds, "validation")


def test_unlabelled_rows_are_dropped_and_counted(compose):
    ds = compose("dataset=others/hellaswag").dataset
    row = {"activity_label": "x", "ctx": "c", "endings": ["a", "b", "c", "d"], "label": "1", "ind": 7}
    rows = Dataset.from_list([row, {**row, "label": "", "ind": 8}])
    examples, dropped = read_examples(rows, ds, "test")
    assert [(e.target, e.row_id) for e in examples] == [("B", "7")] and dropped == 1

    ds = compose("dataset=superglue/record").dataset
    row = {"passage": "p", "query": "@placeholder", "entities": ["A"], "answers": ["A"]}
    examples, dropped = read_examples(Dataset.from_list([row, {**row, "answers": []}]), ds, "test")
    assert [e.references for e in examples] == [("A",)] and dropped == 1


def test_empty_input_after_template(compose):
    ds = compose("dataset=glue/mrpc").dataset
    rows = Dataset.from_dict({"sentence1": ["  "], "sentence2": [""], "label": [0], "idx": [0]})
    with pytest.raises(DataError, match="row 0: empty input"):
        to_examples(rows, ds, "train")


def test_template_dataset_missing_column(compose):
    ds = compose("dataset=glue/mrpc").dataset
    rows = Dataset.from_dict({"sentence1": ["a"], "label": [0]})
    with pytest.raises(
        DataError, match=r"missing column\(s\) \['sentence2'\]; columns found: \['sentence1', 'label'\]"
    ):
        to_examples(rows, ds, "validation")
