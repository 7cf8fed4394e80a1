"""Multiple-choice grading by option letter (V* Bench, MVBench; docs/method.md §8).

Accepted spellings of an answer span: ``B``, ``(B)``, ``B.``, ``B)``, ``Option B``,
``B. Sheep`` / ``(B) Sheep`` (letter then option text), and the option text itself when the
options are known. A span naming two different letters (``A or B``, ``A, C``) is wrong: a
hedge must not score. Letters are case-insensitive only in the forms above, where a lone
lower-case ``b`` cannot be the English article.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence

from pixelctl.grading.extract import clean_span, extract_answer

_LONE_LETTER_RE = re.compile(
    r"(?:(?:option|choice|answer)\s*[:\-]?\s*)?[\(\[]?([A-Za-z])[\)\]]?\s*[.:)]?", re.IGNORECASE
)
_LETTER_THEN_TEXT_RE = re.compile(r"[\(\[]?([A-Za-z])(?:[\)\]]\s*[.:]?|[.:])\s+(\S.*)", re.DOTALL)
_STANDALONE_UPPER_RE = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")
_LETTER = r"[\(\[]?([A-Za-z])[\)\]]?"
_HEDGE_RE = re.compile(
    rf"(?<![A-Za-z]){_LETTER}\s*(?:,|/|&|\bor\b|\band\b)\s*{_LETTER}(?![A-Za-z])", re.IGNORECASE
)


def _norm_text(text: str) -> str:
    text = clean_span(text).lower()
    text = text.strip(string.whitespace + ".,;:!\"'")
    return " ".join(text.split())


def option_letters(options: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """Options as ``{letter: text}``; a plain list is lettered A, B, C… in order."""
    if options is None:
        return {}
    if isinstance(options, Mapping):
        return {str(k).strip().upper(): str(v) for k, v in options.items()}
    return {string.ascii_uppercase[i]: str(v) for i, v in enumerate(options)}


def parse_choice(span: str | None, options: Sequence[str] | Mapping[str, str] | None = None):
    """The option letter named by an answer span, or None (no answer, or an ambiguous one)."""
    if span is None:
        return None
    span = clean_span(span)
    letters = option_letters(options)
    # Without options, A-H: wide enough for V*/MVBench, and it leaves out the pronoun "I".
    valid = set(letters) or set(string.ascii_uppercase[:8])
    for hedge in _HEDGE_RE.finditer(span):
        pair = {hedge.group(1).upper(), hedge.group(2).upper()}
        if len(pair) == 2 and pair <= valid:
            return None  # "A or B", "(A) and (C)": naming two options is no answer
    lone = _LONE_LETTER_RE.fullmatch(span)
    if lone and lone.group(1).upper() in valid:
        return lone.group(1).upper()
    lead = _LETTER_THEN_TEXT_RE.fullmatch(span)
    if lead and lead.group(1).upper() in valid:
        return lead.group(1).upper()
    if letters:
        target = _norm_text(span)
        by_text = [k for k, v in letters.items() if _norm_text(v) == target]
        if len(by_text) == 1:
            return by_text[0]
    named = {m.group(1) for m in _STANDALONE_UPPER_RE.finditer(span)} & valid
    return named.pop() if len(named) == 1 else None


def grade_choice(
    response: str | None,
    answer: str,
    options: Sequence[str] | Mapping[str, str] | None = None,
) -> float:
    """1.0 when the response's answer span names the gold option letter, else 0.0."""
    gold = parse_choice(str(answer), options)
    if gold is None:
        raise ValueError(f"gold answer {answer!r} is not an option letter")
    return float(parse_choice(extract_answer(response), options) == gold)
