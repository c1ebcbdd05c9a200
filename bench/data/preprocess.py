"""Row reshaping for datasets whose hub rows do not map onto (input fields, label) directly.

Each function takes one hub row (a dict) and returns the reshaped row, or None to drop the row (counted
and logged by :func:`bench.data.prompts.to_examples`). A dataset YAML names its function with
``preprocess: <name>``; the returned keys are what ``input_fields`` / ``input_template``, ``label_field``
and ``references_field`` then refer to. A missing column surfaces as a KeyError, which the caller turns into
a DataError naming the dataset, split, row and the columns found. A row that cannot be used raises
ValueError with the reason.

Multiple-choice sets return the hub row plus ``mc_question``, ``mc_options`` (one ``A. ...`` line per
choice) and ``label`` (the answer's index, or None when the row has no label): ``dataset.label_names``
turns the index into the label word (``A``-``D`` for ours, e.g. ``choice1``/``choice2`` for the paper's
COPA prompt), and the hub columns stay available to the paper's templates (``dataset.paper``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from bench.registry import Registry

PREPROCESSORS: Registry[Callable[[dict], dict | None]] = Registry("preprocessor")
LETTERS = "ABCDEFGHIJ"


def options_text(options: Sequence[str]) -> str:
    """``A. first\\nB. second ...`` (each option stripped)."""
    return "\n".join(f"{LETTERS[i]}. {str(text).strip()}" for i, text in enumerate(options))


def _checked(index: int | None, n_options: int) -> int | None:
    if index is not None and not 0 <= index < n_options:
        raise ValueError(f"answer index {index} is outside the {n_options} options")
    return index


def _index(value, base: int = 0) -> int | None:
    """An answer id given as int or digit string (``base`` 1 for "1"/"2"/"3"); None for a missing label."""
    if value is None or value == "" or value == -1:
        return None
    return int(value) - base


def format_number(value: float) -> str:
    """``51.0`` -> ``51``, ``2.5`` -> ``2.5``, ``3.799999952316284`` -> ``3.8`` (float32 noise dropped)."""
    value = round(float(value), 4)
    return str(int(value)) if value.is_integer() else f"{value:.4f}".rstrip("0")


def _multiple_choice(row: dict, question: str, options: Sequence[str], index: int | None) -> dict:
    return {
        **row,
        "mc_question": question.strip(),
        "mc_options": options_text(options),
        "label": _checked(index, len(options)),
    }


@PREPROCESSORS.register("mmlu")
def mmlu(row: dict) -> dict:
    """cais/mmlu: ``choices`` (4 strings), ``answer`` (ClassLabel A-D as an id)."""
    subject = row["subject"].replace("_", " ") if row.get("subject") else ""
    question = f"({subject}) {row['question']}" if subject else row["question"]
    return _multiple_choice(row, question, row["choices"], _index(row["answer"]))


@PREPROCESSORS.register("hellaswag")
def hellaswag(row: dict) -> dict:
    """Rowan/hellaswag: context ``ctx`` (with ``activity_label``), 4 ``endings``, ``label`` as "0".."3"."""
    context = f"{row['activity_label']}: {row['ctx']}" if row.get("activity_label") else row["ctx"]
    # the paper's layout: "ctx_a Ctx_b," (PEFT-Factory's preprocess_hellaswag)
    paper = f"{row.get('ctx_a', '')} {str(row.get('ctx_b') or '').capitalize()},"
    return {**_multiple_choice(row, context, row["endings"], _index(row["label"])), "paper_context": paper}


@PREPROCESSORS.register("obqa")
def obqa(row: dict) -> dict:
    """allenai/openbookqa: ``question_stem``, ``choices`` {text, label}, ``answerKey`` (a letter)."""
    labels, texts = list(row["choices"]["label"]), list(row["choices"]["text"])
    key = row["answerKey"]
    if key and key not in labels:
        raise ValueError(f"answerKey {key!r} is not one of the choice labels {labels}")
    return _multiple_choice(row, row["question_stem"], texts, labels.index(key) if key else None)


@PREPROCESSORS.register("siqa")
def siqa(row: dict) -> dict:
    """lighteval/siqa (= allenai/social_i_qa): context, question, answerA/B/C, ``label`` "1".."3"."""
    question = f"{row['context'].strip()}\n{row['question'].strip()}"
    options = [row["answerA"], row["answerB"], row["answerC"]]
    return _multiple_choice(row, question, options, _index(row["label"], base=1))


@PREPROCESSORS.register("piqa")
def piqa(row: dict) -> dict:
    """PIQA: goal ``goal``, solutions ``sol1``/``sol2``, ``label`` 0/1."""
    return _multiple_choice(row, row["goal"], [row["sol1"], row["sol2"]], _index(row["label"]))


@PREPROCESSORS.register("winogrande")
def winogrande(row: dict) -> dict:
    """allenai/winogrande: ``sentence`` with a ``_`` gap, ``option1``/``option2``, ``answer`` "1"/"2"."""
    options = [row["option1"], row["option2"]]
    return _multiple_choice(row, row["sentence"], options, _index(row["answer"], base=1))


@PREPROCESSORS.register("copa")
def copa(row: dict) -> dict:
    """aps/super_glue copa: ``premise``, ``question`` (cause/effect), ``choice1/2``, ``label`` 0/1."""
    ask = "What was the cause?" if row["question"] == "cause" else "What happened as a result?"
    return _multiple_choice(
        row, f"{row['premise'].strip()}\n{ask}", [row["choice1"], row["choice2"]], _index(row["label"])
    )


_MATHQA_OPTION = re.compile(r"([a-e])\s*\)\s*(.*?)(?=\s*,\s*[a-e]\s*\)|$)")


def mathqa_options(text: str) -> list[str]:
    """``"a ) 38 , b ) 27.675 , ..."`` -> ``["38", "27.675", ...]`` (a few hub rows are list literals)."""
    text = text.strip().strip("[]").replace("'", "")
    options = _MATHQA_OPTION.findall(text)
    if not options or [letter for letter, _ in options] != list("abcde"[: len(options)]):
        raise ValueError(f"cannot read the options {text!r}")
    return [value.strip() for _, value in options]


@PREPROCESSORS.register("mathqa")
def mathqa(row: dict) -> dict:
    """regisss/math_qa (= allenai/math_qa): a 5-option letter task, as PEFT-Bench scored it.

    ``correct`` (a-e) becomes the answer's index; the options are listed A-E for our prompt, and the
    paper's prompt shows the hub's raw ``options`` string with labels a-e (``dataset.paper``).
    """
    options = mathqa_options(row["options"])
    correct = (row["correct"] or "").strip().lower()
    index = "abcde".index(correct) if correct else None
    return _multiple_choice(row, row["Problem"], options, index)


@PREPROCESSORS.register("wsc")
def wsc(row: dict) -> dict:
    """aps/super_glue wsc.fixed: mark the noun span1 as ``[..]`` and the pronoun span2 as ``*..*``.

    Spans are word indices into ``text`` split on spaces, as in the SuperGLUE files.
    """
    words = row["text"].split(" ")
    marks = [
        (row["span1_index"], len(row["span1_text"].split()), "[", "]"),
        (row["span2_index"], len(row["span2_text"].split()), "*", "*"),
    ]
    for start, length, left, right in marks:
        end = start + length - 1
        if not 0 <= start <= end < len(words):
            raise ValueError(f"span at word {start} (+{length}) is outside the text of {len(words)} words")
        words[start] = left + words[start]
        words[end] = words[end] + right
    return {**row, "marked_text": " ".join(words), "paper_text": _paper_wsc_text(row)}


def _mark_span(text: str, span: str, index: int, mark: str) -> str:
    """PEFT-Factory's (T5's) marking: ``mark span mark`` where ``span`` starts word ``index``; else as is."""
    return re.sub(rf"^((?:\S+\s){{{index}}})({re.escape(span)})", rf"\1{mark} \2 {mark}", text, count=1)


def _paper_wsc_text(row: dict) -> str:
    """WSC as PEFT-Factory's hub copy has it: the *noun* (span1) in ``* *``, the pronoun (span2) in ``# #``.

    Its instruction says the opposite (pronoun in ``* *``, noun in ``# #``): kept as published, since
    the paper's numbers were trained and scored on exactly this text.
    """
    text = _mark_span(row["text"], row["span1_text"], row["span1_index"], "*")
    shift = 2 if row["span1_index"] < row["span2_index"] else 0  # the two marks added before span2
    return _mark_span(text, row["span2_text"], row["span2_index"] + shift, "#")


@PREPROCESSORS.register("record")
def record(row: dict) -> dict:
    """aps/super_glue record: passage without ``@highlight`` markers, all gold answers kept.

    ``answer`` is the first gold (the training target; the pipeline trains on one row per gold) and
    ``answers`` all distinct golds in hub order (the test references).
    """
    passage, *highlights = row["passage"].split("@highlight")
    highlights = [h.strip() for h in highlights if h.strip()]
    if highlights:
        passage = passage.strip() + "\n" + "\n".join(f"- {h}" for h in highlights)
    answers = list(dict.fromkeys(a.strip() for a in row["answers"] if a and a.strip()))
    # PEFT-Factory's layout: highlights joined into the passage as sentences, entities as listed
    paper_passage = re.sub(r"(\.|\?|\!|\"|\')\n@highlight\n", r"\1 ", row["passage"])
    return {
        "passage": passage.strip(),
        "query": row["query"].strip(),
        "entities": ", ".join(dict.fromkeys(row["entities"])),
        "answer": answers[0] if answers else None,
        "answers": answers,
        "paper_passage": re.sub(r"\n@highlight\n", ". ", paper_passage),
        "paper_entities": ", ".join(row["entities"]),
    }


@PREPROCESSORS.register("stsb")
def stsb(row: dict) -> dict:
    """nyu-mll/glue stsb: the float32 similarity label as a short number string (``3.8``)."""
    label = row["label"]
    return {**row, "label": None if label is None or label < 0 else format_number(label)}


_CALCULATOR = re.compile(r"<<[^>]*>>")


@PREPROCESSORS.register("gsm8k")
def gsm8k(row: dict) -> dict:
    """openai/gsm8k: target = the full solution ending in ``#### <number>``, calculator ``<<..>>`` removed."""
    answer = row["answer"]
    if "####" not in answer:
        raise ValueError("the answer has no '#### <number>' line")
    return {
        "question": row["question"].strip(),
        "answer": _CALCULATOR.sub("", answer).strip(),
        "paper_answer": answer,  # PEFT-Factory trained on the hub's answer, calculator notes included
    }


@PREPROCESSORS.register("svamp")
def svamp(row: dict) -> dict:
    """ChilleD/SVAMP: target = ``<Equation> = <Answer>`` then ``#### <Answer>``."""
    number = format_number(row["Answer"])
    question = row.get("question_concat") or f"{row['Body'].strip()} {row['Question'].strip()}"
    return {
        **row,
        "question": question.strip(),
        "answer": f"{row['Equation'].strip()} = {number}\n#### {number}",
        "paper_answer": f"{row['Equation']} = {row['Answer']}",  # PEFT-Factory's: "( 76.0 - 25.0 ) = 51.0"
    }


@PREPROCESSORS.register("conala")
def conala(row: dict) -> dict:
    """neulab/conala curated: the rewritten intent where there is one, else the raw intent."""
    return {"intent": (row.get("rewritten_intent") or row["intent"] or "").strip(), "snippet": row["snippet"]}


@PREPROCESSORS.register("apps")
def apps(row: dict) -> dict | None:
    """codeparrot/apps: the question only; target = the first solution (rows without one are dropped)."""
    solutions = json.loads(row["solutions"]) if row["solutions"] else []
    if not solutions:
        return None
    return {"question": row["question"].strip(), "solution": solutions[0].strip()}
