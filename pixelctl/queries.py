"""Prompt records in the authors' layout → `Query`, with every rejected record reported.

The layout (docs/method.md §8, also the RL data): one record per line of a `.jsonl` (or a row of a
`.parquet`) with `qid` (the benchmark is the prefix before the first `-`), `question`, `image`
(a list of paths relative to the file's folder; video frames for a video), `answer` (a string or
a list) and `is_video`; `options` and `category` (or `task`) are kept when present. `to_query`
is the one parser of that layout: eval's loader raises its errors, `load_queries` (RL data, the
OpenRLHF conversion) collects them as rejects. A path may also be a run directory holding
`rl.jsonl` (synth's output). Nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelctl.agent import Query
from pixelctl.rejects import Reject
from pixelctl.rundir import jsonl_rows


class QueryError(ValueError):
    """A query file or record (the authors' layout: RL data and eval sets) that cannot be used;
    names the file and the record."""

    def __init__(self, path: Path | str, message: str, record: int | str | None = None) -> None:
        where = f"{path}" if record is None else f"{path}, record {record}"
        super().__init__(f"{where}: {message}")
        self.path, self.record, self.reason = Path(path), record, message


# qid prefixes seen in the wild → our benchmark names
ALIASES = {
    "vstar": "vstar",
    "v*": "vstar",
    "vstarbench": "vstar",
    "tallyqa": "tallyqa",
    "tally": "tallyqa",
    "infovqa": "infovqa",
    "infographicsvqa": "infovqa",
    "infographicvqa": "infovqa",
    "mvbench": "mvbench",
    "procedural": "procedural",
}


def benchmark_of(qid: str) -> str:
    """The benchmark named by a qid's prefix (before the first `-`), aliases folded."""
    prefix = qid.split("-", 1)[0].strip().lower()
    return ALIASES.get(prefix, prefix)


def require(obj: dict[str, Any], key: str, kind: type | tuple, data_file: Path, record: Any) -> Any:
    if key not in obj:
        raise QueryError(data_file, f"missing field {key!r} (has: {sorted(obj)})", record)
    value = obj[key]
    if not isinstance(value, kind):
        raise QueryError(
            data_file, f"field {key!r} should be {_kind(kind)}, got {type(value).__name__}", record
        )
    return value


def _kind(kind: type | tuple) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def existing(path: Path, data_file: Path, record: int | str, what: str = "image") -> str:
    """The absolute path of a referenced file; a missing one is an error naming the record."""
    if not path.exists():
        raise QueryError(data_file, f"{what} {path} does not exist", record)
    return str(path.resolve())


def _as_list(value: Any, key: str, path: Path, record: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise QueryError(path, f"field {key!r} should be a string or a list of strings", record)


def to_query(row: dict[str, Any], path: Path, record: Any) -> Query:
    """One record of the authors' layout; QueryError says what is wrong with it."""
    qid = str(require(row, "qid", (str, int), path, record))
    question = require(row, "question", str, path, record)
    images = _as_list(require(row, "image", (str, list), path, record), "image", path, record)
    if not images:
        raise QueryError(path, "field 'image' is empty (every item needs an image)", record)
    answer = require(row, "answer", (str, int, list), path, record)
    answer = _as_list(answer, "answer", path, record) if isinstance(answer, list) else str(answer)
    if not [a for a in ([answer] if isinstance(answer, str) else answer) if a.strip()]:
        raise QueryError(path, "field 'answer' is empty", record)
    is_video = row.get("is_video", False)
    if not isinstance(is_video, bool):
        raise QueryError(path, "field 'is_video' should be true or false", record)
    options = row.get("options")
    if options is not None:
        options = tuple(_as_list(options, "options", path, record))
    category = row.get("category", row.get("task"))
    return Query(
        qid=qid,
        question=question,
        images=tuple(existing(path.parent / p, path, record) for p in images),
        is_video=is_video,
        answer=answer,
        benchmark=benchmark_of(qid),
        options=options,
        category=None if category is None else str(category),
    )


@dataclass
class QuerySet:
    queries: list[Query] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.queries)} queries, {len(self.rejects)} rejected"


def resolve_data_file(path: Path, name: str = "rl.jsonl") -> Path:
    """A data file, or `<run dir>/<name>` when given a run directory (or its -latest link)."""
    if path.is_dir():
        inner = path / name
        if not inner.is_file():
            raise FileNotFoundError(f"{path} is a folder without {name}; pass a data file")
        return inner
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file or run directory")
    return path


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from enumerate(pq.read_table(path).to_pylist(), start=1)
        return
    yield from jsonl_rows(path)


def _check(row: Any, path: Path, line: int) -> Query:
    if isinstance(row, Exception):
        raise QueryError(path, f"not valid JSON ({row})", line)
    if not isinstance(row, dict):
        raise QueryError(path, "a record must be a JSON object", line)
    return to_query(row, path, line)


def load_queries(
    paths: list[str | Path],
    *,
    name: str = "rl.jsonl",
    benchmark: str | None = None,
    others: frozenset[str] = frozenset(),
) -> QuerySet:
    """Read every file (or run dir) in order; duplicate qids are rejected after the first.

    Every record is checked up front by the shared rule (`pixelctl.rejects`): its fields, then
    each image's header. With `benchmark` (eval), rows of that benchmark are kept, rows of the
    `others` being evaluated are left to their own source, and a row of no listed benchmark is
    a reject (never a silent drop)."""
    from pixelctl.rejects import check_images

    out, seen = QuerySet(), set()
    for raw in paths:
        path = resolve_data_file(Path(raw), name)
        for line, row in _rows(path):
            qid = row.get("qid") if isinstance(row, dict) else None
            if benchmark is not None and isinstance(qid, (str, int)):
                found = benchmark_of(str(qid))
                if found in others:
                    continue
                if found != benchmark:
                    listed = ", ".join(sorted({benchmark, *others}))
                    reason = (
                        f"qid prefix {found!r} names no benchmark being evaluated ({listed}); "
                        "a qid starts with its benchmark's name, e.g. vstar-12"
                    )
                    out.rejects.append(Reject(str(path), line, str(qid), reason))
                    continue
            try:
                query = _check(row, path, line)
            except QueryError as exc:
                out.rejects.append(Reject(str(path), line, qid, exc.reason))
                continue
            problem = check_images(query.images, query.is_video)
            if problem:
                out.rejects.append(Reject(str(path), line, query.qid, problem))
                continue
            if query.qid in seen:
                out.rejects.append(Reject(str(path), line, query.qid, "duplicate qid"))
                continue
            seen.add(query.qid)
            out.queries.append(query)
    return out
