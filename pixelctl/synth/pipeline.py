"""The synthesis run, top to bottom (what `pixelctl synth` executes):

1. procedural scenes, if the recipe asks (train split as seeds, eval split → eval.jsonl), drawn
   by one process per core;
2. read every seed file and validate every seed (rejects.jsonl gets each failure, once);
3. plan the mix (plan.py): which seed becomes a single-pass, self-correction or text-only
   trajectory — a pure function of the seeds and `synth.seed`;
4. skip seeds already done (their id is in sft.jsonl, or they failed validation);
   with `synth.text_only.source: model`, sample the text-only queries left (text_sampler.py:
   k no-tool answers each through an eval backend, cached per query, graded by eval's graders);
5. build the rest concurrently (re-execute through the executor, then the writer), keeping a window
   of `4 × writer.concurrency` seeds in flight, and append results *in plan order*: a resumed
   run therefore writes byte-for-byte the file an uninterrupted run writes;
6. derive rl.jsonl from sft.jsonl (and text_only_pass_rates.jsonl) and write stats.json.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelctl.config.schema import Recipe
from pixelctl.synth.cache import ResponseCache
from pixelctl.synth.output import EVAL, STATS, Outputs, write_atomic, write_jsonl_atomic
from pixelctl.synth.plan import Assignment, Plan, make_plan
from pixelctl.synth.procedural import eval_records, generate_split, legibility_report
from pixelctl.synth.seeds import Seed, SynthReject, read_seed_file, validate_all
from pixelctl.synth.stats import compute_stats
from pixelctl.synth.trajectories import build_record
from pixelctl.synth.writers import Writer, make_writer

Progress = Callable[[dict[str, Any]], None]
SceneProgress = Callable[[str, int, int], None]  # (split, scenes drawn, scenes in the split)


def n_easy(recipe: Recipe) -> int:
    """Easy procedural scenes: the text-only share of the mix (they feed text-only)."""
    s = recipe.synth
    total = s.n_pixel_space + s.n_text_only
    return round(s.procedural.n_train * s.n_text_only / total) if total else 0


def scene_settings(recipe: Recipe) -> dict[str, Any]:
    """The recipe's `generate_split` keywords shared by both splits (synth.procedural, the seed,
    the train pixel bounds)."""
    s, p = recipe.synth, recipe.synth.procedural
    return {
        "seed": s.seed,
        "canvas_min": p.canvas_min,
        "canvas_max": p.canvas_max,
        "bounds": recipe.executor.settings("train").bounds,
        "grid": p.grid,
        "detail_px": p.detail_px,
        "clear_margin": p.clear_margin,
        "kinds": tuple(p.tasks),
    }


def procedural_seeds(
    recipe: Recipe, out: Path, on_scenes: SceneProgress | None = None
) -> list[Path]:
    """Generate the procedural splits (reused when complete); write eval.jsonl."""
    p = recipe.synth.procedural
    common = scene_settings(recipe)
    files = []

    def follow(split: str) -> Callable[[int, int], None] | None:
        return (lambda done, n: on_scenes(split, done, n)) if on_scenes else None

    if p.n_train:
        train = generate_split(
            out, "train", p.n_train, n_easy=n_easy(recipe), on_progress=follow("train"), **common
        )
        files.append(train)
    if p.n_eval:
        eval_file = generate_split(out, "eval", p.n_eval, on_progress=follow("eval"), **common)
        write_jsonl_atomic(out / EVAL, eval_records(eval_file, out))
    return files


def load_seeds(
    recipe: Recipe, out: Path, on_scenes: SceneProgress | None = None
) -> tuple[list[Seed], list[SynthReject]]:
    """Every seed of the recipe, validated; unusable ones as rejects with reasons."""
    raw: list[Seed] = []
    rejects: list[SynthReject] = []
    sources = [(Path(src.path), src.kind) for src in recipe.synth.seeds]
    sources += [(f, "procedural") for f in procedural_seeds(recipe, out, on_scenes)]
    for path, kind in sources:
        seeds, bad = read_seed_file(path, kind)
        raw += seeds
        rejects += bad
    ex = recipe.executor
    good, bad = validate_all(raw, ex.max_input_pixels, ex.max_frames)
    return good, rejects + bad


async def _ordered(
    todo: list[Assignment], build: Callable, window: int, sink: Callable[[Assignment, Any], None]
) -> None:
    """Build up to `window` seeds at once; hand results to `sink` in `todo` order."""
    pending: deque[tuple[Assignment, asyncio.Task]] = deque()
    items = iter(todo)
    try:
        while True:
            while len(pending) < window and (a := next(items, None)) is not None:
                pending.append((a, asyncio.ensure_future(build(a))))
            if not pending:
                return
            a, task = pending.popleft()
            sink(a, await task)
    finally:
        for _, task in pending:
            task.cancel()
        await asyncio.gather(*(t for _, t in pending), return_exceptions=True)


async def synthesize(
    recipe: Recipe,
    out: Path,
    *,
    writer: Writer | None = None,
    on_progress: Progress | None = None,
    on_scenes: SceneProgress | None = None,
    window: int | None = None,
    backoff_s: float = 0.5,
) -> dict[str, Any]:
    """Run (or resume) synthesis into `out`; returns the stats written to stats.json."""
    s = recipe.synth
    out.mkdir(parents=True, exist_ok=True)
    seeds, rejects = await asyncio.to_thread(load_seeds, recipe, out, on_scenes)
    plan = make_plan(seeds, s.n_pixel_space, s.n_text_only, s.self_correction_ratio, s.seed)
    outputs = Outputs(out)
    own_writer = writer is None
    writer = writer or make_writer(s.writer, out / "cache", backoff_s=backoff_s)
    sampler = None
    try:
        for r in rejects:
            outputs.add_reject(r)
        todo = [a for a in plan.assignments if not outputs.is_done(a.seed.id)]
        counts = {
            "total": len(plan.assignments),
            "skipped": len(plan.assignments) - len(todo),
            "written": 0,
            "rejected": 0,
        }
        settings = recipe.executor.settings("train")
        if s.text_only.source == "model":
            from pixelctl.synth.text_sampler import TextSampler

            sampler = TextSampler(recipe, out)
            await asyncio.to_thread(sampler.sample, todo)

        def build(a: Assignment) -> Any:
            if sampler is not None and a.kind == "text_only":
                return asyncio.to_thread(sampler.build, a, recipe.prompt.mode)
            return build_record(a, writer, settings, out, recipe.prompt.mode)

        def sink(a: Assignment, result: dict[str, Any] | SynthReject) -> None:
            if isinstance(result, SynthReject):
                outputs.add_reject(result)
                counts["rejected"] += 1
            else:
                outputs.add_record(result)
                counts["written"] += 1
            if on_progress:
                on_progress({**counts, "seed": a.seed.id, "writer": writer.stats.as_dict()})

        await _ordered(todo, build, window or max(16, 4 * s.writer.concurrency), sink)
        outputs.write_rl()
        if sampler is not None:
            sampler.write_pass_rates(plan.assignments)
            counts["text_only_sampler"] = sampler.stats  # type: ignore[assignment]
        stats = _stats(recipe, out, plan, writer, counts, len(rejects))
        write_atomic(out / STATS, _dump(stats))
        return stats
    finally:
        outputs.close()
        if sampler is not None:
            sampler.close()
        if own_writer:
            await writer.aclose()


def _stats(
    recipe: Recipe, out: Path, plan: Plan, writer: Writer, counts: dict[str, int], seed_rejects: int
) -> dict[str, Any]:
    w = recipe.synth.writer
    tokens = ResponseCache(out / "cache").totals() if w.kind == "llm" else {}
    plan_info = {
        "pixel_space": plan.wanted_pixel,
        "text_only": plan.wanted_text,
        "planned": {k: plan.count(k) for k in ("single_pass", "self_correction", "text_only")},
        "shortfall": plan.shortfall,
        "seed_rejects": seed_rejects,
    }
    p = recipe.synth.procedural
    if p.n_train or p.n_eval:
        plan_info["procedural_legibility"] = legibility_report(
            p.canvas_min,
            p.canvas_max,
            recipe.executor.settings("train").bounds,
            recipe.executor.pad,
            p.detail_px,
        )
    this_run = {**counts, "writer": writer.stats.as_dict()}
    return compute_stats(
        out,
        plan=plan_info,
        tokens=tokens,
        usd_in=w.usd_per_1k_input_tokens,
        usd_out=w.usd_per_1k_output_tokens,
        this_run=this_run,
    )


def _dump(stats: dict[str, Any]) -> str:
    return json.dumps(stats, indent=2, ensure_ascii=False) + "\n"


def run_synth(recipe: Recipe, out: Path, **kwargs: Any) -> dict[str, Any]:
    """Synchronous entry point (the stage and the tests)."""
    return asyncio.run(synthesize(recipe, out, **kwargs))


__all__ = ["load_seeds", "run_synth", "scene_settings", "synthesize"]
