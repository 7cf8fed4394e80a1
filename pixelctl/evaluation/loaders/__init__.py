"""Benchmark loaders: the authors' layout and each benchmark's official layout → `Query` lists.

`load_source(name, path, layout, limit)` is the one entry point; `QueryError` messages name
the file and the record. Official layouts: V* (`test_questions.jsonl`), TallyQA (`test.json`,
complex only), InfographicsVQA (the val JSON), MVBench (`json/<task>.json` + videos or frames).
The procedural split exists only in the authors' layout (synth writes it that way).
"""

from __future__ import annotations

from pathlib import Path

from pixelctl.agent import Query
from pixelctl.evaluation.loaders import authors, infovqa, mvbench, tallyqa, vstar
from pixelctl.evaluation.loaders._common import QueryError

OFFICIAL = {
    "vstar": vstar.load,
    "infovqa": infovqa.load,
}


def load_source(
    name: str,
    path: Path | str,
    layout: str = "authors",
    limit: int | None = None,
    *,
    frames_dir: Path | str | None = None,
    complex_rule: str = "issimple",
) -> list[Query]:
    """The items of one benchmark source, in file order, the first `limit` only if given.

    `complex_rule` picks TallyQA's complex questions in the official layout (`issimple`/`amt`).
    """
    if layout == "authors":
        queries = authors.load(path, name)
    elif layout != "official":
        raise QueryError(path, f"unknown layout {layout!r}; use 'authors' or 'official'")
    elif name == "mvbench":
        queries = mvbench.load(path, frames_dir, limit)
    elif name == "tallyqa":
        queries = tallyqa.load(path, complex_rule)
    elif name in OFFICIAL:
        queries = OFFICIAL[name](path)
    else:
        raise QueryError(path, f"{name!r} has no official layout; use layout: authors")
    return queries[:limit] if limit is not None else queries


__all__ = ["QueryError", "load_source"]
