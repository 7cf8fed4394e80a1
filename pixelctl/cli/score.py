"""`pixelctl score PRED.jsonl [--benchmark NAME] [--json]`: re-score a per-sample file.

Reads our `samples.jsonl` records (`qid`, `benchmark`, `response`, `answer`, `options`) or
the authors' `sample.eval_*.jsonl` lines (`solutions` = the response, `gts` = the answer or
answer list, `qids` = the id; a line whose `qids` is a list holds a batch, zipped). The
benchmark is `--benchmark`, else the record's own, else the qid prefix. Prints the official
metric and `paper_compat` per benchmark beside the paper's Table 1; `--json` prints
`{benchmark: {"accuracy"|"anls": …, "paper_compat": …, "n": …}}` (percent), plus
`anls_harness` for InfographicsVQA. This is how ANLS is computed from existing outputs.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from pixelctl.evaluation.metrics import metric_name, score_item
from pixelctl.queries import benchmark_of
from pixelctl.rundir import jsonl_rows


class ScoreInputError(ValueError):
    """A prediction line that cannot be scored; names the file and line."""


def _items(obj: dict[str, Any], where: str) -> list[tuple[str, str, Any, Any, Any]]:
    """(qid, response, answer, options, benchmark or None) for one line."""
    if "solutions" in obj or "gts" in obj:
        for key in ("solutions", "gts", "qids"):
            if key not in obj:
                raise ScoreInputError(f"{where}: authors' line without {key!r}")
        qids, sols, gts = obj["qids"], obj["solutions"], obj["gts"]
        if isinstance(qids, list):
            if not (isinstance(sols, list) and isinstance(gts, list) and len(sols) == len(qids)):
                raise ScoreInputError(f"{where}: 'qids' is a list but 'solutions'/'gts' differ")
            return [
                (str(q), _text(s), g, None, None) for q, s, g in zip(qids, sols, gts, strict=False)
            ]
        return [(str(qids), _text(sols), gts, None, None)]
    for key in ("qid", "response", "answer"):
        if key not in obj:
            raise ScoreInputError(f"{where}: neither our record nor the authors' (no {key!r})")
    return [
        (str(obj["qid"]), obj["response"], obj["answer"], obj.get("options"), obj.get("benchmark"))
    ]


def _text(solution: Any) -> str:
    """A response; a list of turns is joined as the agent joins them."""
    return "\n".join(map(str, solution)) if isinstance(solution, list) else str(solution or "")


def rescore(path: Path, benchmark: str | None = None) -> dict[str, dict[str, Any]]:
    """Scores per benchmark: the official metric and paper_compat in percent, and n."""
    from pixelctl.grading import BENCHMARKS

    known = {*BENCHMARKS, "procedural"}
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for number, obj in jsonl_rows(path):
        where = f"{path}, line {number}"
        if isinstance(obj, json.JSONDecodeError):
            raise ScoreInputError(f"{where}: not valid JSON ({obj.msg})")
        if not isinstance(obj, dict):
            raise ScoreInputError(f"{where}: expected a JSON object")
        for qid, response, answer, options, own in _items(obj, where):
            bench = benchmark or own or benchmark_of(qid)
            if bench not in known:
                raise ScoreInputError(
                    f"{where}: cannot tell the benchmark of qid {qid!r}; pass --benchmark "
                    f"({', '.join(sorted(known))})"
                )
            try:
                scores = score_item(bench, response, answer, options)
            except ValueError as exc:
                raise ScoreInputError(f"{where} (qid {qid}): {exc}") from None
            acc = sums[bench]
            acc["n"] += 1
            for key, value in scores.items():
                acc[key] += value
    if not sums:
        raise ScoreInputError(f"{path}: no prediction to score")
    return {b: _finish(b, acc) for b, acc in sums.items()}


def _finish(bench: str, acc: dict[str, float]) -> dict[str, Any]:
    n = int(acc["n"])
    metric = metric_name(bench)
    out: dict[str, Any] = {"metric": metric}
    for key in (metric, "anls_harness", "paper_compat"):
        if key in acc:
            out[key] = round(100.0 * acc[key] / n, 2)
    out["n"] = n
    return out


def score_command(path: Path | str, benchmark: str | None = None, as_json: bool = False) -> int:
    """The CLI body; returns the exit code (0 ok, 2 unreadable input)."""
    path = Path(path)
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return 2
    try:
        result = rescore(path, benchmark)
    except ScoreInputError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if as_json:
        shown = {b: {k: v for k, v in m.items() if k != "metric"} for b, m in result.items()}
        print(json.dumps(shown, indent=2))
        return 0
    from pixelctl.evaluation.table import console, render

    console().print(render(result, title=f"pixelctl score {path.name}"))
    return 0
