"""The authors' eval layout (docs/method.md §8): parquet or JSONL rows with an images folder.

Fields: `qid` (the benchmark is the prefix before the first `-`), `question`, `image` (a list
of paths relative to the data file's folder; a video's frames when `is_video`), `answer` (a
string or a list of acceptable strings), `is_video`. Optional: `options` (multiple choice, as
our procedural split writes it) and `category` (or `task`). A folder holds one or more such
files, read in name order. Rows of other benchmarks (by qid prefix) are skipped, so one
combined file serves every benchmark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelctl.agent import Query
from pixelctl.evaluation.loaders._common import QueryError, check_unique, read_jsonl
from pixelctl.queries import benchmark_of, to_query

SUFFIXES = (".parquet", ".jsonl", ".json")


def data_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise QueryError(root, "no such file or folder (expected a parquet/jsonl eval file)")
    files = sorted(p for p in root.iterdir() if p.suffix in SUFFIXES and p.is_file())
    if not files:
        raise QueryError(root, f"no eval file ({', '.join(SUFFIXES)}) in this folder")
    return files


def _rows(path: Path) -> list[tuple[int | str, dict[str, Any]]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise QueryError(path, f"cannot read parquet: {exc}") from None
        return [(f"row {i}", row) for i, row in enumerate(table.to_pylist())]
    return [(f"line {n}", obj) for n, obj in read_jsonl(path)]


def load(root: Path | str, benchmark: str) -> list[Query]:
    """Every row of `benchmark` (by qid prefix) in the file(s) under `root`, in order."""
    root = Path(root)
    queries: list[Query] = []
    prefixes: set[str] = set()
    for path in data_files(root):
        for record, row in _rows(path):
            if not isinstance(row.get("qid"), (str, int)):
                raise QueryError(path, "missing field 'qid'", record)
            found = benchmark_of(str(row["qid"]))
            prefixes.add(found)
            if found == benchmark:
                queries.append(to_query(row, path, record))
    if not queries:
        raise QueryError(
            root, f"no {benchmark!r} items (qid prefixes found: {sorted(prefixes) or 'none'})"
        )
    return check_unique(queries, root)
