"""Graders: the official metric of each benchmark and the authors' ``paper-compat`` matcher.

``grade(benchmark, response, answer, **kw)`` gives the official per-item score (docs/method.md §8);
``scores(...)`` gives every number pixelctl records for that item (official, paper-compat and,
for InfographicsVQA, the harness ANLS). A response without an answer scores 0: it is wrong,
never dropped from the denominator. Nothing here imports torch; ``math_verify`` is imported
only when paper-compat runs, inside a time-bounded helper process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pixelctl.grading.anls import grade_anls, grade_anls_harness
from pixelctl.grading.choice import grade_choice
from pixelctl.grading.counting import grade_count
from pixelctl.grading.exact import grade_exact
from pixelctl.grading.extract import extract_answer, last_boxed
from pixelctl.grading.paper_compat import paper_compat_score
from pixelctl.grading.timeout import GradingError, GradingTimeout

GRADERS: dict[str, Callable[..., float]] = {
    "choice": grade_choice,
    "count": grade_count,
    "anls": grade_anls,
    "anls_harness": grade_anls_harness,
    "exact": grade_exact,
    "paper_compat": paper_compat_score,
}


@dataclass(frozen=True)
class Benchmark:
    """How one benchmark is scored: the metric it reports and the grader that computes it."""

    metric: str
    grader: str
    extra: tuple[str, ...] = ()


BENCHMARKS: dict[str, Benchmark] = {
    "vstar": Benchmark("accuracy", "choice"),
    "tallyqa": Benchmark("accuracy", "count"),
    "infovqa": Benchmark("anls", "anls", extra=("anls_harness",)),
    "mvbench": Benchmark("accuracy", "choice"),
}
OFFICIAL_METRICS: dict[str, str] = {name: b.metric for name, b in BENCHMARKS.items()}


def _benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}") from None


def grade(benchmark: str, response: str | None, answer: Any, **kw: Any) -> float:
    """Official per-item score of ``response`` (kw: ``options`` for multiple choice)."""
    return GRADERS[_benchmark(benchmark).grader](response, answer, **kw)


def scores(
    benchmark: str, response: str | None, answer: Any, *, timeout: float | None = 5.0, **kw: Any
) -> dict[str, float]:
    """Every recorded score of one item: official metric, extras, and ``paper_compat``."""
    spec = _benchmark(benchmark)
    out = {spec.metric: grade(benchmark, response, answer, **kw)}
    for extra in spec.extra:
        out[extra] = GRADERS[extra](response, answer)
    golds = [answer] if isinstance(answer, (str, int)) else list(answer)
    out["paper_compat"] = paper_compat_score(response, [str(g) for g in golds], timeout=timeout)
    return out


__all__ = [
    "BENCHMARKS",
    "GRADERS",
    "OFFICIAL_METRICS",
    "Benchmark",
    "GradingError",
    "GradingTimeout",
    "extract_answer",
    "grade",
    "last_boxed",
    "paper_compat_score",
    "scores",
]
