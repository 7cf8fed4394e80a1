"""Integer counting answers (TallyQA; docs/method.md §8): exact match on the number in the answer span.

The number comes from the final-answer span, never from the reasoning ("I see 2 dogs … so
\\boxed{3}" answers 3). Inside the span the first number counts: digits with thousands
separators (``1,234``), number words zero…twenty, and ``none``/``no`` meaning 0. A span with no
number, or a non-integer like ``2.5``, is wrong.
"""

from __future__ import annotations

import re

from pixelctl.grading.extract import clean_span, extract_answer

_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
NUMBER_WORDS: dict[str, int] = {word: i for i, word in enumerate(_WORDS.split(" "))}
NUMBER_WORDS.update({"none": 0, "no": 0})

_TOKEN_RE = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w])"  # 1,234 / 12 / 12.0
    r"|(?<![\w-])(" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")(?![\w-])",
    re.IGNORECASE,
)


def parse_count(span: str | None) -> int | None:
    """The first integer named in ``span``; None when there is none or it is fractional."""
    if span is None:
        return None
    match = _TOKEN_RE.search(clean_span(span))
    if match is None:
        return None
    digits, fraction, word = match.groups()
    if word is not None:
        return NUMBER_WORDS[word.lower()]
    if fraction is not None and set(fraction[1:]) != {"0"}:
        return None  # 2.5 objects is not a count; 3.0 is 3
    return int(digits.replace(",", ""))


def grade_count(response: str | None, answer: int | str) -> float:
    """1.0 when the response's answer span holds exactly the gold integer, else 0.0."""
    gold = answer if isinstance(answer, int) else parse_count(str(answer))
    if gold is None:
        raise ValueError(f"gold answer {answer!r} is not an integer")
    return float(parse_count(extract_answer(response)) == gold)
