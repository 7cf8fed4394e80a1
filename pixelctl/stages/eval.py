"""`pixelctl eval`: the benchmarks of the recipe through one backend, scored two ways (docs/method.md §8).

plan: the model the checkpoint resolves to, the backend, workers, bounds and each source.
run:  load every source (validated; errors name the file and record), run the multi-turn
      agent greedily over fixed chunks (`hf`/`vllm` across Ray actors when workers > 1,
      `openai` with concurrent requests), append each finished chunk to `samples.jsonl`,
      then write `metrics.json` and print the table beside the paper's Table 1. `--resume`
      skips finished items and gives the same records as an uninterrupted run.
The logic lives in pixelctl/evaluation/; this module only orchestrates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pixelctl.config import LoadedRecipe, RecipeError
from pixelctl.rundir import RunDir

CHUNK = {"hf": 8, "vllm": 64}


def _source(loaded: LoadedRecipe) -> str:
    return str(loaded.path) if loaded.path else "<recipe>"


def _device(loaded: LoadedRecipe) -> str:
    device = loaded.recipe.launch.device
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _model(loaded: LoadedRecipe) -> str:
    from pixelctl.models.resolve import resolve_model

    r = loaded.recipe
    try:
        return resolve_model(r.eval.checkpoint_path() or r.model.name_or_path)
    except ValueError as exc:
        from pixelctl.rundir import resolve_link

        where = r.eval.checkpoint_path() or r.model.name_or_path
        raise RecipeError(_source(loaded), [f"{exc} ({resolve_link(where)[1]})"]) from None


def settings_for(loaded: LoadedRecipe, model_path: str, device: str) -> tuple[Any, Any]:
    """(RunSettings, BackendSpec) from the recipe: the one bridge from config to the loop."""
    from pixelctl.backends import BackendSpec
    from pixelctl.evaluation.chunks import RunSettings

    r, ev = loaded.recipe, loaded.recipe.eval
    bounds = r.executor.bounds.eval
    chunk = CHUNK.get(ev.backend, 2 * ev.openai.concurrency)
    run = RunSettings(
        executor=r.executor.settings("eval"),
        mode=r.prompt.mode,
        max_new_tokens=ev.max_new_tokens,
        chunk_size=chunk,
        processor_min_pixels=bounds.processor_min_pixels,
        processor_max_pixels=bounds.processor_max_pixels,
    )
    spec = BackendSpec(
        kind=ev.backend,
        model_path=model_path,
        dtype=r.model.dtype,
        device=device,
        seed=ev.seed,
        batch_size=chunk,
        base_url=ev.openai.base_url,
        model_name=ev.openai.model,
        api_key_env=ev.openai.api_key_env,
        concurrency=ev.openai.concurrency,
        processor_min_pixels=bounds.processor_min_pixels,
        processor_max_pixels=bounds.processor_max_pixels,
        max_images=r.executor.max_images,
    )
    return run, spec


def plan(loaded: LoadedRecipe) -> str:
    r, ev = loaded.recipe, loaded.recipe.eval
    if not ev.sources():
        raise RecipeError(_source(loaded), ["eval.benchmarks is empty: add at least one source"])
    if ev.backend == "openai":
        model = f"{ev.openai.model} at {ev.openai.base_url}"
    else:
        try:
            model = _model(loaded)
        except RecipeError:
            model = f"{ev.checkpoint_path() or r.model.name_or_path} (not found yet)"
    b = r.executor.bounds.eval
    lines = [
        f"eval: {model}",
        f"  backend {ev.backend}, workers {ev.workers}, prompt {r.prompt.mode}, greedy, "
        f"{ev.max_new_tokens} new tokens per turn, seed {ev.seed}",
        f"  bounds: image {b.image_min_pixels}..{b.image_max_pixels}, crop "
        f"{b.crop_min_pixels}..{b.crop_max_pixels}, processor "
        f"{b.processor_min_pixels or 'model'}..{b.processor_max_pixels or 'model'} px",
    ]
    for s in ev.sources():
        state = "" if Path(s.path).exists() else "  (missing)"
        limit = f", first {s.limit}" if s.limit else ""
        lines.append(f"  {s.name}: {s.path} ({s.layout} layout{limit}){state}")
    return "\n".join(lines)


def _load(loaded: LoadedRecipe) -> tuple[list, dict[str, list]]:
    """Every item of every source, and the rejects of each benchmark (the shared rule,
    `pixelctl.rejects`): all bad records are listed at once, none stops the load. A row of the
    authors' layout whose qid names no benchmark being evaluated is a reject, not a drop."""
    from pixelctl.evaluation.loaders import QueryError, load_source
    from pixelctl.evaluation.loaders.authors import data_files
    from pixelctl.queries import load_queries
    from pixelctl.rejects import Reject, check_images

    sources = loaded.recipe.eval.sources()
    names = frozenset(s.name for s in sources)
    queries: list = []
    rejects: dict[str, list] = {}
    seen: set[tuple[str, int | str]] = set()  # a combined file read for several benchmarks
    try:
        for s in sources:
            if s.layout == "authors":
                others = names - {s.name}
                got = load_queries(data_files(Path(s.path)), benchmark=s.name, others=others)
                items, bad = got.queries, got.rejects
                if s.limit is not None:
                    items = items[: s.limit]
                if not items and not bad:
                    raise QueryError(s.path, f"no {s.name!r} items (check the qid prefixes)")
            else:
                items, bad = [], []
                for q in load_source(s.name, s.path, s.layout, s.limit, complex_rule=_rule(loaded)):
                    problem = check_images(q.images, q.is_video)
                    if problem:
                        bad.append(Reject(str(s.path), 0, q.qid, problem))
                    else:
                        items.append(q)
            fresh = [r for r in bad if (r.file, r.line) not in seen or not r.line]
            seen.update((r.file, r.line) for r in fresh)
            queries += items
            rejects[s.name] = rejects.get(s.name, []) + fresh
    except QueryError as exc:
        raise RecipeError(_source(loaded), [str(exc)]) from None
    return queries, rejects


def _rule(loaded: LoadedRecipe) -> str:
    return loaded.recipe.eval.tallyqa.complex_rule  # TallyQA's complex questions (official)


def tallyqa_rule(ev: Any) -> str:
    """What metrics.json records for TallyQA: the recipe's `eval.tallyqa.complex_rule`, or
    `authors` when no TallyQA source has the official layout (the authors' file is a subset)."""
    official = any(s.name == "tallyqa" and s.layout == "official" for s in ev.sources())
    return ev.tallyqa.complex_rule if official else "authors"


def preflight(loaded: LoadedRecipe) -> None:
    """Refuse before a run directory exists: a released checkpoint must be fetched first
    (`--fetch`), the model must resolve and every source must load."""
    from pixelctl.evaluation.released import require_fetched

    require_fetched(loaded)
    if loaded.recipe.eval.backend != "openai":
        _model(loaded)
    _load(loaded)


def run(loaded: LoadedRecipe, run: RunDir) -> None:
    from rich.progress import Progress

    from pixelctl import rejects as rj
    from pixelctl.evaluation.metrics import summarize
    from pixelctl.evaluation.released import released_title
    from pixelctl.evaluation.runner import run_eval
    from pixelctl.evaluation.table import console as table_console
    from pixelctl.evaluation.table import render
    from pixelctl.rundir import kill_point

    console, ev = table_console(), loaded.recipe.eval
    device = "cpu" if ev.backend == "openai" else _device(loaded)
    model = "" if ev.backend == "openai" else _model(loaded)
    queries, rejects = _load(loaded)
    every = [r for bad in rejects.values() for r in bad]
    file = rj.write(run.path / rj.REJECTS_FILE, every)
    console.print(rj.summary("eval data", len(queries), every, file))
    rj.enforce("eval data", len(queries), every, loaded.recipe.max_reject_fraction, file)
    settings, spec = settings_for(loaded, model, device)
    run.update_meta(eval={"model": model, "items": len(queries), "chunk_size": settings.chunk_size})

    def on_chunk(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
        kill_point(done)  # tests only: stop here at a chosen chunk (a no-op otherwise)

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("eval chunks", total=None)
        records = run_eval(
            queries, run.path, settings, backend=spec, workers=ev.workers, on_chunk=on_chunk
        )
    metrics = summarize(records)
    if "tallyqa" in metrics:  # which questions were "complex" (docs/eval.md)
        metrics["tallyqa"]["complex_rule"] = tallyqa_rule(ev)
    for bench, block in metrics.items():
        block["rejected"] = len(rejects.get(bench, []))  # not in n; listed in rejects.jsonl
    (run.path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for bench, m in metrics.items():
        run.log_metrics({"benchmark": bench, **{k: v for k, v in m.items() if k != "categories"}})
    from pixelctl.tracking import log_final  # TensorBoard / W&B: <benchmark>/<metric>

    log_final(loaded.recipe.logging, run.path, metrics, loaded.recipe.model_dump(mode="json"))
    console.print(render(metrics, title=released_title(loaded.recipe.eval)))
    for line in problem_lines(metrics, records, rejects, file):
        console.print(f"[yellow]{line}[/yellow]", highlight=False)
    console.print(f"samples: {run.path / 'samples.jsonl'}; metrics: {run.path / 'metrics.json'}")


def problem_lines(
    metrics: dict[str, Any], records: list[dict[str, Any]], rejects: dict[str, list], file: Path
) -> list[str]:
    """Beside the score: per benchmark, items that failed to run (scored wrong, in n) and
    records rejected before the run (not in n), with where to read each one."""
    out = []
    for bench in sorted(set(metrics) | {b for b, r in rejects.items() if r}):
        errors = [r for r in records if r["benchmark"] == bench and r.get("error")]
        bad = rejects.get(bench, [])
        if not errors and not bad:
            continue
        parts = []
        if errors:
            first = errors[0]
            parts.append(
                f"{len(errors)} error(s), scored wrong and counted in n (first: {first['qid']}: "
                f"{first['error']})"
            )
        if bad:
            parts.append(f"{len(bad)} record(s) rejected, not in n (see {file})")
        out.append(f"{bench}: " + "; ".join(parts))
    return out
