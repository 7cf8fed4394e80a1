"""InfographicsVQA, official layout: the val JSON (`{"data": [...]}`) and its images folder.

Each item: `questionId`, `question`, `image_local_name`, `answers` (a list; ANLS takes the
max over it), `answer_type` (used as the category). Images are looked up in
`infographicsvqa_images/`, `images/`, or beside the JSON file, in that order.
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
from pixelctl.queries import require

VAL_FILES = ("infographicsVQA_val*.json", "*val*.json")
IMAGE_DIRS = ("infographicsvqa_images", "images", ".")


def _image(folder: Path, name: str, path: Path, record: str) -> str:
    for sub in IMAGE_DIRS:
        candidate = folder / sub / name
        if candidate.is_file():
            return str(candidate.resolve())
    looked = ", ".join(str(folder / d / name) for d in IMAGE_DIRS)
    raise QueryError(path, f"image {name!r} not found (looked in {looked})", record)


def load(root: Path | str) -> list[Query]:
    path = find_file(Path(root), VAL_FILES, "InfographicsVQA val JSON")
    data = read_json(path)
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise QueryError(path, "expected an object with a 'data' list (the official val JSON)")
    queries = []
    for i, obj in enumerate(items):
        record = f"data[{i}]"
        if not isinstance(obj, dict):
            raise QueryError(path, "expected a JSON object", record)
        answers = require(obj, "answers", list, path, record)
        if not answers or not all(isinstance(a, (str, int, float)) for a in answers):
            raise QueryError(path, "'answers' should be a non-empty list of strings", record)
        types = obj.get("answer_type") or []
        qid = require(obj, "questionId", (int, str), path, record)
        name = require(obj, "image_local_name", str, path, record)
        queries.append(
            Query(
                qid=f"infovqa-{qid}",
                question=require(obj, "question", str, path, record),
                images=(_image(path.parent, name, path, record),),
                answer=[str(a) for a in answers],
                benchmark="infovqa",
                category="/".join(map(str, types))
                if isinstance(types, list)
                else str(types) or None,
            )
        )
    return check_unique(queries, path)
