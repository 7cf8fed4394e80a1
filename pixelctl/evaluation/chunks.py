"""One chunk of eval queries → one batch of multi-turn rollouts → scored records.

A chunk (consecutive items of one benchmark, `chunk_size` each, cut before anything is
skipped) is the unit of batching, resume and sharding: an item always shares its batch with
the same neighbours, so a resumed or sharded run writes the records of an uninterrupted one.
Images the model sees are clamped once more to the processor bounds, as the reference's
processor does, whatever the backend.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pixelctl.agent import BatchGenerate, Query, Rollout, SamplingPlan, run_batch
from pixelctl.evaluation import records as rec
from pixelctl.evaluation.metrics import metric_name, score_item
from pixelctl.executor import ExecutorSettings, ImageLoadError, smart_resize
from pixelctl.models.qwen import FACTOR


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides a record; travels by value to every worker."""

    executor: ExecutorSettings = field(default_factory=lambda: ExecutorSettings.preset("eval"))
    mode: Literal["vcot", "notool"] = "vcot"
    max_new_tokens: int = 2048
    chunk_size: int = 8
    processor_min_pixels: int | None = None
    processor_max_pixels: int | None = None
    grading_timeout: float | None = 5.0


class ProcessorClamp:
    """Wrap `generate` so every image is fitted to the processor's own pixel bounds first."""

    def __init__(self, generate: BatchGenerate, min_pixels: int | None, max_pixels: int | None):
        self.generate, self.min_pixels, self.max_pixels = generate, min_pixels, max_pixels
        self._cache: dict[int, tuple[weakref.ref, Any]] = {}

    def fit(self, image: Any) -> Any:
        hit = self._cache.get(id(image))
        if hit is not None and hit[0]() is image:
            return hit[1]
        w, h = image.size
        nh, nw = smart_resize(h, w, FACTOR, self.min_pixels, self.max_pixels)
        out = image if (nw, nh) == (w, h) else image.resize((nw, nh), resample=3)  # bicubic
        self._cache[id(image)] = (weakref.ref(image), out)
        return out

    def _conv(self, conv: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for message in conv:
            content = [
                {**item, "image": self.fit(item["image"])} if item.get("type") == "image" else item
                for item in message["content"]
            ]
            out.append({**message, "content": content})
        return out

    def __call__(self, convs: Sequence[list[dict[str, Any]]], samplings: Sequence[Any]) -> list:
        self._cache = {k: v for k, v in self._cache.items() if v[0]() is not None}
        return self.generate([self._conv(c) for c in convs], samplings)


def chunks(queries: Sequence[Query], size: int) -> list[list[Query]]:
    """Fixed chunks of consecutive items of one benchmark (the unit of batching and resume)."""
    out: list[list[Query]] = []
    for q in queries:
        if out and len(out[-1]) < size and out[-1][-1].benchmark == q.benchmark:
            out[-1].append(q)
        else:
            out.append([q])
    return out


def evaluate_chunk(
    queries: Sequence[Query], generate: BatchGenerate, settings: RunSettings, out_dir: Path
) -> list[dict[str, Any]]:
    """Run one chunk to its end as one batch and return its records, in chunk order."""
    rollouts, errors = [], {}
    for q in queries:
        try:
            rollouts.append(
                Rollout(
                    q,
                    settings=settings.executor,
                    mode=settings.mode,
                    plan=SamplingPlan.greedy(settings.max_new_tokens),
                )
            )
        except (ImageLoadError, OSError, ValueError) as exc:
            errors[q.qid] = f"{type(exc).__name__}: {exc}"
    if settings.processor_min_pixels or settings.processor_max_pixels:
        generate = ProcessorClamp(
            generate, settings.processor_min_pixels, settings.processor_max_pixels
        )
    outcomes = {o.query.qid: o for o in run_batch(rollouts, generate)}
    out = []
    for q in queries:
        metric = metric_name(q.benchmark)
        if q.qid in errors:
            out.append(rec.error_record(q, metric, errors[q.qid]))
            continue
        o = outcomes[q.qid]
        scores = score_item(
            q.benchmark, o.response, q.answer, q.options, timeout=settings.grading_timeout
        )
        out.append(rec.build_record(o, scores, metric, rec.save_crops(o, out_dir)))
    return out
