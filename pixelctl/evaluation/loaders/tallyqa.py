"""TallyQA-Complex, official layout: `test.json` (a list) with image paths relative to it.

Each item: `image` (e.g. `VG_100K/2376430.jpg`), `question`, `answer` (an integer),
`question_id`, `issimple`, `data_source`. Which questions are "complex" (`complex_rule`):
- `issimple` (default; docs/method.md §8 and the dataset's README): `issimple == false`;
- `amt`: `data_source == "amt"`, the crowd-written questions, which is what TallyQA's own
  scoring code counts as complex (`eval_simp_comp` in manoja328/tallyqacode, `eval_extra.py`).
docs/eval.md says which one gives the paper's Test-Complex. The authors scored a 3,200-question
subset; `limit` (first N, file order) gives a fixed subset.
"""

from __future__ import annotations

from pathlib import Path

from pixelctl.agent import Query
from pixelctl.evaluation.loaders._common import (
    QueryError,
    check_unique,
    find_file,
    read_json,
)
from pixelctl.queries import existing, require

TEST_FILE = "test.json"
COMPLEX_RULES = ("issimple", "amt")


def is_complex(obj: dict, rule: str, path: Path, record: str) -> bool:
    if rule == "amt":
        return require(obj, "data_source", str, path, record) == "amt"
    return not require(obj, "issimple", bool, path, record)


def load(root: Path | str, complex_rule: str = "issimple") -> list[Query]:
    path = find_file(Path(root), [TEST_FILE], f"TallyQA {TEST_FILE}")
    if complex_rule not in COMPLEX_RULES:
        raise QueryError(path, f"unknown complex_rule {complex_rule!r}; use {COMPLEX_RULES}")
    data = read_json(path)
    if not isinstance(data, list):
        raise QueryError(path, "expected a JSON list of questions")
    queries = []
    for i, obj in enumerate(data):
        record = f"item {i}"
        if not isinstance(obj, dict):
            raise QueryError(path, "expected a JSON object", record)
        if not is_complex(obj, complex_rule, path, record):
            continue
        answer = require(obj, "answer", (int, str), path, record)
        if isinstance(answer, bool) or not str(answer).strip().isdigit():
            raise QueryError(path, f"answer {answer!r} is not a non-negative integer", record)
        qid = require(obj, "question_id", (int, str), path, record)
        image = require(obj, "image", str, path, record)
        queries.append(
            Query(
                qid=f"tallyqa-{qid}",
                question=require(obj, "question", str, path, record),
                images=(existing(path.parent / image, path, record),),
                answer=str(int(answer)),
                benchmark="tallyqa",
                category=str(obj.get("data_source") or "complex"),
            )
        )
    if not queries:
        which = "data_source == amt" if complex_rule == "amt" else "issimple == false"
        raise QueryError(path, f"no complex question ({which}) in this file")
    return check_unique(queries, path)
