"""Find the final-answer span of a response (docs/method.md §4, §8).

Order: the last brace-balanced ``\\boxed{…}`` (what the prompt asks for), then the fallbacks
the official graders tolerate: the last ``<answer>…</answer>``, the last ``Answer:`` line or
"the answer is …". A bare one-line response of at most 24 characters is its own answer (the
no-tool baseline sometimes replies just ``B``). ``None`` means "no answer": graders score it
wrong, never drop it.

A truncated box is no answer. A ``\\boxed{`` whose brace never closes (the response ran out of
tokens) is cut off with everything after it, and extraction reads only the text before it: an
earlier closed box, tag or answer line there still counts, the bare-response rule does not (the
text left is a cut-off response, not a bare answer). So ``\\boxed{B``, short as it is, has no
answer, and ``\\boxed{A} … \\boxed{B`` answers A. (``paper_compat`` keeps the authors' own
rule: it reads from the last ``boxed`` to the end, closed or not.)
"""

from __future__ import annotations

import re

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_LINE_RE = re.compile(r"(?:final\s+)?answer\s*[:：]\s*([^\n]*)", re.IGNORECASE)
_ANSWER_IS_RE = re.compile(r"the\s+(?:final\s+|correct\s+)?answer\s+is\s*[:：]?\s*([^\n]*)", re.I)
_SPECIAL_TOKENS_RE = re.compile(r"<\|[a-z_]+\|>")
_BARE_MAX_CHARS = 24


def _balanced_from(text: str, open_brace: int) -> str | None:
    """Content of the brace group opening at ``open_brace``; None when it never closes."""
    depth = 0
    for i in range(open_brace, len(text)):
        ch = text[i]
        if ch == "{" and text[i - 1] != "\\":
            depth += 1
        elif ch == "}" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[open_brace + 1 : i]
    return None


def cut_truncated_box(text: str) -> tuple[str, bool]:
    """The text before the first ``\\boxed{`` that never closes, and whether one was cut."""
    for match in _BOXED_RE.finditer(text):
        if _balanced_from(text, match.end() - 1) is None:
            return text[: match.start()], True
    return text, False


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{…}`` before any truncated box (module docstring)."""
    text, _ = cut_truncated_box(text)
    for match in reversed(list(_BOXED_RE.finditer(text))):
        content = _balanced_from(text, match.end() - 1)
        if content is not None:
            return content.strip()
    return None


def _strip_period(span: str) -> str:
    span = span.strip()
    return span[:-1].rstrip() if span.endswith(".") else span


def _first_sentence(span: str) -> str:
    """Cut at the sentence end: 'the answer is B. Because …' gives 'B'."""
    cut = re.search(r"\.\s", span)
    return _strip_period(span[: cut.start()] if cut else span)


def extract_answer(text: str | None, *, bare: bool = True) -> str | None:
    """The final-answer span of ``text``, or None when the response gives no answer."""
    if not text:
        return None
    text, truncated = cut_truncated_box(_SPECIAL_TOKENS_RE.sub("", text))
    bare = bare and not truncated
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    tags = _ANSWER_TAG_RE.findall(text)
    if tags:
        return tags[-1].strip()
    # An "Answer:" line is kept whole (abbreviations like "U.S. Army" survive); a free-text
    # "the answer is …" is cut at its sentence end.
    candidates = [
        (m.start(), trim(m.group(1)))
        for pattern, trim in ((_ANSWER_LINE_RE, _strip_period), (_ANSWER_IS_RE, _first_sentence))
        for m in pattern.finditer(text)
    ]
    candidates = [c for c in candidates if c[1]]
    if candidates:
        return max(candidates)[1]
    stripped = text.strip()
    if bare and stripped and "\n" not in stripped and len(stripped) <= _BARE_MAX_CHARS:
        return stripped
    return None


def clean_span(span: str) -> str:
    """Strip LaTeX/markdown wrappers a model puts around a short answer (``\\text{}``, ``**``, ``$``)."""
    span = span.strip()
    previous = None
    while previous != span:
        previous = span
        inner = re.fullmatch(r"\\(?:text|textbf|mathrm|mbox)\s*\{(.*)\}", span, re.DOTALL)
        if inner:
            span = inner.group(1).strip()
        for left, right in (("$", "$"), ("**", "**"), ("`", "`"), ('"', '"'), ("'", "'")):
            if (
                len(span) >= len(left) + len(right)
                and span.startswith(left)
                and span.endswith(right)
            ):
                span = span[len(left) : len(span) - len(right)].strip()
    return span
