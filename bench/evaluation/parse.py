"""Read a model's answer: drop think blocks, then find the label word it names (peftbench's convention).

A label counts only as the whole answer or as the answer's whole leading word or option marker, after an
optional lead-in ("Answer:", "The correct answer is", "Option"): "Answer: C" -> C, "(B) because" -> B,
"Positive." -> positive, "not entailment" -> not_entailment. A label that merely starts a longer word
("neutrality", "entailments") or sits later in the answer ("Definitely A") names nothing: the answer is
invalid. PEFT-Bench's own reading (exact equality after lower-casing) is in bench.metrics.paper.
"""

from __future__ import annotations

import re

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_CLOSE_THINK = re.compile(r"</think>", re.IGNORECASE)
_OPEN_THINK = re.compile(r"<think>", re.IGNORECASE)
_EDGE_PUNCT = ".,;:!?\"'`*()[]{}<> \t\n"
_OPENERS = "([{\"'`*_ \t\n"
# "Answer:", "The correct answer is", "Final answer -", "Option", "Label:", "Sentiment:", "**Answer:**" ...
_LEAD_IN = re.compile(
    r"^(?:the\s+)?(?:(?:final|correct|right|best)\s+)?"
    r"(?:answer|option|choice|label|prediction|output|sentiment|classification|relation)"
    r"\s*\**\s*(?:is\s*)?\**\s*[:=\-]?\s*\**\s*",
)


def strip_think(text: str | None) -> str:
    """``text`` without ``<think>...</think>`` blocks, stripped; "" for None.

    A closing tag without an opening one (the chat template opened the block in the prompt) keeps what
    follows it; an unclosed ``<think>`` (the budget ran out while thinking) leaves no answer after it.
    """
    if text is None:
        return ""
    text = _THINK_BLOCK.sub("", text)
    closes = list(_CLOSE_THINK.finditer(text))
    if closes:
        text = text[closes[-1].end() :]
    opened = _OPEN_THINK.search(text)
    if opened:
        text = text[: opened.start()]
    return text.strip()


def _spellings(label: str) -> list[str]:
    """Case-folded ways to write ``label``: as is, and with its underscores as spaces or hyphens."""
    fold = label.casefold()
    return list(dict.fromkeys([fold, fold.replace("_", " "), fold.replace("_", "-")]))


def _ends_word(text: str, end: int) -> bool:
    """True when ``text[:end]`` ends a whole word: at the end, or before a character no word goes on with."""
    return end == len(text) or not (text[end].isalnum() or text[end] in "_-")


def _leading_label(answer: str, labels: list[str]) -> str | None:
    """The label whose spelling is the whole leading word(s) of ``answer`` (longest spelling wins)."""
    spellings = sorted(((s, label) for label in labels for s in _spellings(label)), key=lambda x: -len(x[0]))
    for spelling, label in spellings:
        if answer.startswith(spelling) and _ends_word(answer, len(spelling)):
            return label
    return None


def parse_label(text: str | None, labels: list[str]) -> str | None:
    """The label word ``text`` names, or None when it names none (an invalid answer).

    Think blocks dropped, case folded. First the whole answer (edge punctuation and markdown ignored),
    then the answer's leading word or option marker, with or without a lead-in such as "Answer:".
    """
    answer = strip_think(text).casefold()
    by_spelling = {s: label for label in labels for s in _spellings(label)}
    bare = answer.strip(_EDGE_PUNCT)
    if bare in by_spelling:
        return by_spelling[bare]
    answer = answer.lstrip(_OPENERS)
    for candidate in (answer, _LEAD_IN.sub("", answer, count=1).lstrip(_OPENERS)):
        found = _leading_label(candidate, labels)
        if found is not None:
            return found
    return None
