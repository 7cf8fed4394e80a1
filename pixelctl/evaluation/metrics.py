"""Scores of one item and aggregates per benchmark (docs/method.md §8).

`score_item` gives the official metric (accuracy or ANLS) and the authors' `paper_compat`
for one response, through `pixelctl.grading`. Our procedural split is not a grading
benchmark: with options it is graded like V* (option letter, or the option text), without
them by exact match. `summarize` turns records into `metrics.json`: per benchmark the official
metric and `paper_compat` in percent, `n`, per-category numbers and tool-use statistics. A
record without an answer, or one that failed to run, counts as wrong (it stays in `n`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from pixelctl import grading

CHOICE_BENCHMARKS = frozenset({"vstar", "mvbench"})


def metric_name(benchmark: str) -> str:
    """The official metric's key: `anls` for InfographicsVQA, else `accuracy`."""
    return grading.OFFICIAL_METRICS.get(benchmark, "accuracy")


def score_item(
    benchmark: str,
    response: str | None,
    answer: Any,
    options: Sequence[str] | None = None,
    *,
    timeout: float | None = 5.0,
) -> dict[str, float]:
    """Every score of one item: the official metric, extras (`anls_harness`), `paper_compat`."""
    if benchmark in ("vstar", "mvbench", "tallyqa") and isinstance(answer, (list, tuple)):
        answer = answer[0] if answer else ""  # one gold letter / count, sometimes list-wrapped
    if benchmark == "procedural":
        if options:
            return grading.scores("vstar", response, answer, options=list(options), timeout=timeout)
        golds = [answer] if isinstance(answer, str) else list(answer)
        return {
            "accuracy": grading.GRADERS["exact"](response, golds),
            "paper_compat": grading.paper_compat_score(response, golds, timeout=timeout),
        }
    if benchmark in CHOICE_BENCHMARKS and options:
        return grading.scores(benchmark, response, answer, options=list(options), timeout=timeout)
    return grading.scores(benchmark, response, answer, timeout=timeout)


def _pct(values: list[float]) -> float:
    return round(100.0 * sum(values) / len(values), 2) if values else 0.0


def _block(records: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    return {
        metric: _pct([r["official"] for r in records]),
        "paper_compat": _pct([r["paper_compat"] for r in records]),
        "n": len(records),
    }


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per benchmark: official metric and paper_compat (percent), n, categories, tool use."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r["benchmark"]].append(r)
    out = {}
    for bench, recs in groups.items():
        metric = metric_name(bench)
        block = {"metric": metric, **_block(recs, metric)}
        if any("anls_harness" in r["scores"] for r in recs):
            block["anls_harness"] = _pct([r["scores"].get("anls_harness", 0.0) for r in recs])
        by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in recs:
            by_cat[str(r.get("category"))].append(r)
        if len(by_cat) > 1 or None not in {r.get("category") for r in recs}:
            block["categories"] = {c: _block(v, metric) for c, v in sorted(by_cat.items())}
        block["tool_use_rate"] = _pct([float(r["n_calls"] > 0) for r in recs])
        block["calls_mean"] = round(sum(r["n_calls"] for r in recs) / len(recs), 3)
        block["completion_tokens_mean"] = round(
            sum(r["completion_tokens"] for r in recs) / len(recs), 1
        )
        block["no_answer"] = sum(r.get("extracted") is None for r in recs)
        block["errors"] = sum(r.get("error") is not None for r in recs)
        block["stop_reasons"] = dict(sorted(Counter(r["stop_reason"] for r in recs).items()))
        out[bench] = block
    return out
