"""Rows -> (input text, target text) -> prompts through the model's chat template -> token ids.

The prompt is masked out of the loss (labels -100); the target is the label word (or answer text)
followed by EOS, so generation learns to stop.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass

from bench.config.schema import LABEL_TASKS, PROMPT_STYLES, DatasetConfig, ModelConfig
from bench.errors import ConfigError, DataError

IGNORE_INDEX = -100
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    input: str  # the formatted input fields (no instruction)
    target: str  # the text the model should produce: a label word or an answer
    references: tuple[str, ...] = ()  # every gold answer where a row has several (ReCoRD); else empty
    # the dataset's own id (``dataset.id_field``) or the row's index in its hub split; kept through
    # caps, hold-outs and dropped rows, so two runs can be compared example by example
    row_id: str = ""

    @property
    def reference(self) -> str | list[str]:
        """What the metrics compare against: all golds for multi-answer rows, else the target."""
        return list(self.references) if self.references else self.target


_PAPER_KEYS = ("instruction", "input_template", "label_names", "label_field")


def check_prompt_style(ds: DatasetConfig) -> None:
    """``dataset.prompt_style`` is one of PROMPT_STYLES, and ``paper`` has a paper prompt to use."""
    if ds.prompt_style not in PROMPT_STYLES:
        raise ConfigError(
            f"dataset.prompt_style={ds.prompt_style!r} is not allowed; use one of: "
            f"{', '.join(PROMPT_STYLES)} (peftbench: our prompts; paper: PEFT-Factory's, from dataset.paper)."
        )
    if ds.prompt_style == "paper" and ds.paper.instruction is None:
        raise ConfigError(
            f"dataset {ds.name!r} has no paper prompt (dataset.paper.instruction is unset): add "
            "PEFT-Factory's instruction under paper: in its YAML, or use dataset.prompt_style=peftbench."
        )


def apply_prompt_style(ds: DatasetConfig) -> None:
    """With ``prompt_style=paper``, put ``dataset.paper``'s fields in place of the dataset's own, in place.

    Afterwards ``dataset.instruction``, ``input_template``, ``label_names`` and ``label_field`` are the
    ones the run uses, for every reader (prompts, parsing, scoring); calling it again changes nothing.
    ``paper.train_instruction`` is applied per split by :func:`training_instruction`. The run's identity
    (``run_key``) is the composed config's, ``prompt_style`` and ``paper`` included: compute it before
    this runs (bench.run does), not after.
    """
    check_prompt_style(ds)
    if ds.prompt_style != "paper":
        return
    for key in _PAPER_KEYS:
        value = getattr(ds.paper, key)
        if value is not None:
            setattr(ds, key, value)


def training_instruction(ds: DatasetConfig) -> str:
    """The instruction of training rows: the paper's train entry where it differs, else the instruction."""
    if ds.prompt_style == "paper" and ds.paper.train_instruction is not None:
        return ds.paper.train_instruction
    return ds.instruction


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names a format string uses, in order, without repeats."""
    names = (name for _, name, _, _ in string.Formatter().parse(template) if name)
    return list(dict.fromkeys(name.split(".")[0].split("[")[0] for name in names))


def _input_text(row: dict, ds: DatasetConfig) -> str:
    if ds.input_template:
        return ds.input_template.format(**{k: "" if v is None else v for k, v in row.items()}).strip()
    if len(ds.input_fields) == 1:
        return str(row[ds.input_fields[0]]).strip()
    return "\n".join(
        f"{field.replace('_', ' ').capitalize()}: {str(row[field]).strip()}" for field in ds.input_fields
    )


def _label_word(value, ds: DatasetConfig, split: str, i: int) -> str | None:
    names = list(ds.label_names)
    where = f"dataset {ds.name!r}, split {split!r}, row {i}"
    if value is None or value == "" or (isinstance(value, int) and value == -1):
        return None  # unlabelled: dropped and counted
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DataError(f"{where}: label {value!r} is neither a label id nor a label word.")
    if isinstance(value, int):
        if not 0 <= value < len(names):
            raise DataError(f"{where}: label id {value} is outside the label set {names}.")
        return names[value]
    if value not in names:
        raise DataError(f"{where}: label {value!r} is not in the label set {names}.")
    return value


def needed_columns(ds: DatasetConfig) -> list[str]:
    """The columns the (preprocessed) rows must have: input fields, label, references."""
    inputs = template_fields(ds.input_template) if ds.input_template else list(ds.input_fields)
    extra = [ds.references_field] if ds.references_field else []
    return list(dict.fromkeys([*inputs, ds.label_field, *extra]))


def _check_columns(columns: list[str], ds: DatasetConfig, split: str, where: str = "") -> None:
    missing = [c for c in needed_columns(ds) if c not in columns]
    if missing:
        raise DataError(
            f"dataset {ds.name!r}, split {split!r}{where}: missing column(s) {missing}; "
            f"columns found: {columns}."
        )


def _target(row: dict, ds: DatasetConfig, split: str, i: int) -> str | None:
    """The row's target text, or None when it has none (an unlabelled row, an empty answer)."""
    if ds.task_type in LABEL_TASKS:
        return _label_word(row[ds.label_field], ds, split, i)
    value = row[ds.label_field]
    return None if value is None or not str(value).strip() else str(value)


def _row_ids(dataset, ds: DatasetConfig, split: str) -> list[str]:
    """``dataset.id_field`` as text (dict ids such as MultiRC's joined with ``/``), else the row index.

    An id column whose values repeat within the split is no id: the row index is used and logged.
    """
    n = len(dataset)
    if not ds.id_field or ds.id_field not in dataset.column_names:
        if ds.id_field:
            log.warning(
                "dataset %s, split %s: no id column %r; row indices are the ids", ds.name, split, ds.id_field
            )
        return [str(i) for i in range(n)]
    ids = [
        "/".join(str(v) for v in value.values()) if isinstance(value, dict) else str(value)
        for value in dataset[ds.id_field]
    ]
    if len(set(ids)) != n:
        log.warning(
            "dataset %s, split %s: ids in %r repeat; row indices are the ids", ds.name, split, ds.id_field
        )
        return [str(i) for i in range(n)]
    return ids


def _plain(ds: DatasetConfig) -> DatasetConfig:
    """The config as a dataclass: OmegaConf attribute access costs ~30 us, too much per row."""
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(ds, DictConfig):
        return ds
    obj = OmegaConf.to_object(ds)
    return obj if isinstance(obj, DatasetConfig) else DatasetConfig(**obj)


def to_examples(dataset, ds: DatasetConfig, split: str) -> list[Example]:
    """:func:`read_examples` without the count of dropped rows."""
    return read_examples(dataset, ds, split)[0]


def read_examples(dataset, ds: DatasetConfig, split: str) -> tuple[list[Example], int]:
    """Check columns and labels, reshape rows (``dataset.preprocess``), turn each into an :class:`Example`.

    Rows without a target (no label, an empty answer) and rows the preprocess drops are left out, counted
    and logged: one bad row of a hub release never stops a run. A split with no usable row is an error.
    Returns the examples and the number of rows dropped. Errors name the dataset, split and row (the
    hub row number, before any dropped rows).
    """
    from bench.data.preprocess import PREPROCESSORS

    ds = _plain(ds)
    columns = list(dataset.column_names)
    reshape = PREPROCESSORS.get(ds.preprocess) if ds.preprocess else None
    if reshape is None:
        _check_columns(columns, ds, split)
    input_names = template_fields(ds.input_template) if ds.input_template else list(ds.input_fields)
    row_ids = _row_ids(dataset, ds, split)
    examples, dropped = [], {"preprocess": 0, "no target": 0}
    checked = reshape is None
    for i, row in enumerate(dataset.to_list()):  # one Arrow conversion, not one per row
        if reshape is not None:
            where = f"dataset {ds.name!r}, split {split!r}, row {i}"
            try:
                row = reshape(row)
            except KeyError as err:
                raise DataError(
                    f"{where}: missing column {err.args[0]!r} (preprocess {ds.preprocess!r}); "
                    f"columns found: {columns}."
                ) from None
            except (ValueError, TypeError, IndexError) as err:
                raise DataError(f"{where}: {err} (preprocess {ds.preprocess!r}).") from None
            if row is None:
                dropped["preprocess"] += 1
                continue
            if not checked:
                _check_columns(list(row), ds, split, f" after preprocess {ds.preprocess!r}")
                checked = True
        target = _target(row, ds, split, i)
        if target is None:
            dropped["no target"] += 1
            continue
        text = _input_text(row, ds)
        # With a template the labels it adds are never empty; the input is empty when every field is.
        if not text.strip() or all(row[f] is None or not str(row[f]).strip() for f in input_names):
            raise DataError(f"dataset {ds.name!r}, split {split!r}, row {i}: empty input.")
        references = ()
        if ds.references_field:
            references = tuple(str(r) for r in row[ds.references_field] or ())
            if not references:
                raise DataError(
                    f"dataset {ds.name!r}, split {split!r}, row {i}: no gold answers ({ds.references_field})."
                )
        examples.append(Example(input=text, target=target, references=references, row_id=row_ids[i]))
    for reason, n in dropped.items():
        if n:
            why = f"preprocess {ds.preprocess}" if reason == "preprocess" else f"no target ({ds.label_field})"
            log.info(
                "dataset %s, split %s: dropped %d of %d row(s): %s", ds.name, split, n, len(dataset), why
            )
    if not examples and len(dataset):
        raise DataError(
            f"dataset {ds.name!r}, split {split!r}: none of its {len(dataset)} rows has a target "
            f"({ds.label_field}); use a labelled split (dataset.train_split / dataset.test_split)."
        )
    return examples, sum(dropped.values())


def expand_references(examples: list[Example]) -> list[Example]:
    """One training example per gold answer for multi-answer rows (ReCoRD); others unchanged."""
    return [
        Example(ex.input, ref, row_id=ex.row_id) if ex.references else ex
        for ex in examples
        for ref in (ex.references or (ex.target,))
    ]


def uses_chat_template(tokenizer, model: ModelConfig) -> bool:
    return bool(model.chat_template and getattr(tokenizer, "chat_template", None))


def build_prompt(tokenizer, model: ModelConfig, instruction: str, input_text: str) -> str:
    """The prompt text up to where the answer starts."""
    content = f"{instruction.strip()}\n\n{input_text}" if instruction.strip() else input_text
    if uses_chat_template(tokenizer, model):
        messages = [{"role": "user", "content": content}]
        if model.system_prompt:
            messages.insert(0, {"role": "system", "content": model.system_prompt})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"{content}\nAnswer: "


_INPUT_MARK = "\x00peftbench-input\x00"  # stands for the input while the prompt's frame is located


def _cut_middle(ids: list[int], keep: int) -> list[int]:
    """The first ``ceil(keep/2)`` and last ``floor(keep/2)`` of ``ids``."""
    if len(ids) <= keep:
        return ids
    head = (keep + 1) // 2
    return ids[:head] + ids[len(ids) - (keep - head) :]


def _encode(tokenizer, model: ModelConfig, instruction: str, examples, answers, max_len: int):
    """Prompt texts and ids (and answers) fitted into ``max_len`` row by row; returns the rows cut too.

    A row that fits is the tokenised prompt plus its answer, untouched. A row that does not keeps its
    frame whole (system prompt, instruction, template, the answer cue): the input is cut in its middle
    and the answer at its end, each keeping at least half of the room the frame leaves when both are
    long, else the longer one gives up what the other does not use.
    """
    prompts = [build_prompt(tokenizer, model, instruction, ex.input) for ex in examples]
    # Chat templates write their own BOS where the model wants one.
    add_special = not uses_chat_template(tokenizer, model)
    ids = tokenizer(prompts, add_special_tokens=add_special)["input_ids"] if prompts else []
    over = [i for i, (p, a) in enumerate(zip(ids, answers, strict=True)) if len(p) + len(a) > max_len]
    if not over:
        return prompts, ids, answers, 0
    before, _, after = build_prompt(tokenizer, model, instruction, _INPUT_MARK).partition(_INPUT_MARK)
    head = tokenizer(before, add_special_tokens=add_special)["input_ids"]
    tail = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    room = max_len - len(head) - len(tail)
    if room < 2:
        raise DataError(
            "the prompt without its input (system prompt, instruction, template) takes "
            f"{len(head) + len(tail)} tokens, leaving {room} of trainer.max_seq_length={max_len} for the "
            "input and answer: raise trainer.max_seq_length or shorten the instruction."
        )
    inputs = tokenizer([examples[i].input for i in over], add_special_tokens=False)["input_ids"]
    answers = list(answers)
    for i, input_ids in zip(over, inputs, strict=True):
        answer = answers[i]
        keep_input = min(len(input_ids), max(room - len(answer), room // 2))
        ids[i] = head + _cut_middle(input_ids, keep_input) + tail
        answers[i] = answer[: room - min(len(input_ids), keep_input)]
    return prompts, ids, answers, len(over)


def encode_prompts(
    tokenizer, model: ModelConfig, ds: DatasetConfig, examples: list[Example], max_len: int
) -> tuple[list[str], list[list[int]], int]:
    """Prompt texts, their token ids fitted into ``max_len`` (a long input cut in its middle, never the
    instruction or the answer cue), and the number of prompts cut."""
    prompts, ids, _, n_cut = _encode(
        tokenizer, model, ds.instruction, examples, [[] for _ in examples], max_len
    )
    return prompts, ids, n_cut


def encode_for_training(
    tokenizer,
    model: ModelConfig,
    ds: DatasetConfig,
    examples: list[Example],
    max_len: int,
    instruction: str | None = None,
):
    """A ``datasets.Dataset`` with input_ids / attention_mask / labels (prompt masked with -100), and
    the number of rows cut to fit ``max_len`` (each row on its own: see :func:`_encode`).

    ``instruction`` defaults to ``ds.instruction`` (the paper's WinoGrande trains with another one).
    """
    from datasets import Dataset

    instruction = ds.instruction if instruction is None else instruction
    eos = tokenizer.eos_token_id
    targets = tokenizer([ex.target for ex in examples], add_special_tokens=False)["input_ids"]
    answers = [[*target, eos] for target in targets]
    _, prompt_ids, answers, n_cut = _encode(tokenizer, model, instruction, examples, answers, max_len)
    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for prompt, answer in zip(prompt_ids, answers, strict=True):
        rows["input_ids"].append(prompt + answer)
        rows["attention_mask"].append([1] * (len(prompt) + len(answer)))
        rows["labels"].append([IGNORE_INDEX] * len(prompt) + answer)
    return Dataset.from_dict(rows), n_cut
