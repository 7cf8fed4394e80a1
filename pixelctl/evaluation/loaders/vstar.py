"""V* Bench, official layout: `test_questions.jsonl` beside the category image folders.

Each line: `image` (relative path), `text` (the question, then one `(A) …` line per option,
then the direct-answer instruction), `category` (`direct_attributes` / `relative_position`),
`question_id`, `label` (the answer letter). The options in this file are shuffled; building
items from the raw per-image annotations instead puts the answer first and inflates scores
by 4–5 points (docs/method.md §8), so only this file is accepted. The instruction line ("Answer with the
option's letter …") is dropped: the docs/method.md §3 guideline asks for reasoning and a boxed answer.
"""

from __future__ import annotations

import re
from pathlib import Path

from pixelctl.agent import Query
from pixelctl.evaluation.loaders._common import (
    QueryError,
    check_unique,
    find_file,
    option_letter,
    read_jsonl,
)
from pixelctl.queries import existing, require

QUESTIONS_FILE = "test_questions.jsonl"
_OPTION_RE = re.compile(r"^\(([A-Z])\)\s*(.*)$")
_INSTRUCTION_RE = re.compile(r"^answer with the option", re.IGNORECASE)


def split_options(text: str, path: Path, record: str) -> tuple[str, tuple[str, ...]]:
    """(question stem, options in letter order) of one `text` field."""
    stem, options = [], []
    for line in text.splitlines():
        match = _OPTION_RE.match(line.strip())
        if match:
            if match.group(1) != option_letter(len(options)):
                raise QueryError(path, f"option ({match.group(1)}) out of order", record)
            options.append(match.group(2).strip())
        elif options or _INSTRUCTION_RE.match(line.strip()):
            continue  # text after the options is the answer-format instruction
        else:
            stem.append(line)
    if len(options) < 2:
        raise QueryError(path, "fewer than two '(A) …' option lines in 'text'", record)
    return "\n".join(stem).strip(), tuple(options)


def load(root: Path | str) -> list[Query]:
    path = find_file(Path(root), [QUESTIONS_FILE], f"V* {QUESTIONS_FILE}")
    queries = []
    for number, obj in read_jsonl(path):
        record = f"line {number}"
        text = require(obj, "text", str, path, record)
        label = str(require(obj, "label", str, path, record)).strip().strip("()").upper()
        stem, options = split_options(text, path, record)
        if label not in {option_letter(i) for i in range(len(options))}:
            raise QueryError(path, f"label {label!r} is not one of the options", record)
        image = require(obj, "image", str, path, record)
        qid = require(obj, "question_id", (int, str), path, record)
        lines = [f"({option_letter(i)}) {o}" for i, o in enumerate(options)]
        queries.append(
            Query(
                qid=f"vstar-{qid}",
                question="\n".join([stem, *lines]),
                images=(existing(path.parent / image, path, record),),
                answer=label,
                benchmark="vstar",
                options=options,
                category=str(obj.get("category") or Path(image).parent.name or "") or None,
            )
        )
    return check_unique(queries, path)
