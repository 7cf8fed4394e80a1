"""Shared loader plumbing: errors that name the file and the record, path checks, limits.

Every loader returns `pixelctl.agent.Query` objects with absolute image paths, in the file's
order, so the runner, the shards and a resumed run all see the same sequence.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pixelctl.agent import Query
from pixelctl.queries import QueryError
from pixelctl.rundir import jsonl_rows

# the authors' record errors and field checks are the RL data's (pixelctl.queries)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryError(path, f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise QueryError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-empty line."""
    try:
        rows = jsonl_rows(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryError(path, f"cannot read: {exc}") from None
    for number, obj in rows:
        if isinstance(obj, json.JSONDecodeError):
            raise QueryError(path, f"line {number} is not valid JSON ({obj.msg})")
        if not isinstance(obj, dict):
            raise QueryError(path, "expected a JSON object per line", f"line {number}")
        yield number, obj


def find_file(root: Path, names: Iterable[str], what: str) -> Path:
    """`root` itself when it is a file, else the first of `names` inside it."""
    if root.is_file():
        return root
    if not root.is_dir():
        raise QueryError(root, f"no such file or folder (expected {what})")
    for name in names:
        for hit in sorted(root.glob(name)):
            if hit.is_file():
                return hit
    raise QueryError(root, f"no {what} found (looked for {', '.join(names)})")


def check_unique(queries: list[Query], data_file: Path) -> list[Query]:
    seen: dict[str, int] = {}
    for i, q in enumerate(queries):
        if q.qid in seen:
            raise QueryError(data_file, f"duplicate qid {q.qid!r} (also item {seen[q.qid]})", i)
        seen[q.qid] = i
    return queries


def option_letter(index: int) -> str:
    return chr(ord("A") + index)
