"""`pixelctl synth`: build the warm-start SFT dataset from annotated seeds (docs/method.md §1, §7).

Orchestration only; the logic lives in `pixelctl.synth` (see `pixelctl/synth/pipeline.py` for the
algorithm as it runs). Resume: the CLI passes the same run directory again, and seeds already in
`sft.jsonl` (or rejected at validation) are skipped; results are appended in plan order, so a
resumed run ends with the same files as an uninterrupted one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pixelctl.config import LoadedRecipe, RecipeError
from pixelctl.rundir import RunDir

METRICS_EVERY = 25  # seeds between metrics.jsonl lines (plus one at the end)


def plan(loaded: LoadedRecipe) -> str:
    """What a run would do: sources, the mix, the writer (never the key itself)."""
    r = loaded.recipe
    s, p, w = r.synth, r.synth.procedural, r.synth.writer
    if r.prompt.mode == "notool" and s.n_pixel_space:
        raise RecipeError(
            str(loaded.path or loaded.name),
            ["prompt.mode 'notool' has no tools: set synth.n_pixel_space=0 or use 'vcot'"],
        )
    n_sc = round(s.n_pixel_space * s.self_correction_ratio)
    lines = [f"synth: {loaded.name}", "seeds:"]
    lines += [
        f"  - {src.kind:<6} {src.path}" + ("" if Path(src.path).is_file() else "  (MISSING)")
        for src in s.seeds
    ] or ["  (no seed files)"]
    if p.n_train or p.n_eval:
        lines.append(
            f"  - procedural: {p.n_train} train + {p.n_eval} held-out eval scenes, "
            f"canvas {p.canvas_min}-{p.canvas_max} px"
        )
    lines += [
        f"mix: {s.n_pixel_space} pixel-space ({s.n_pixel_space - n_sc} single-pass + {n_sc} "
        f"self-correction) + {s.n_text_only} text-only; seed {s.seed}",
        f"executor: box_mode {r.executor.box_mode}, pad {r.executor.pad}, train pixel bounds",
    ]
    if w.kind == "llm":
        key = "set" if os.environ.get(w.api_key_env) else "NOT SET"
        lines.append(
            f"writer: llm {w.model} at {w.base_url}, concurrency {w.concurrency}, "
            f"{w.max_retries} retries, timeout {w.timeout_s}s, key from ${w.api_key_env} "
            f"({key})"
        )
    else:
        lines.append("writer: template (offline, deterministic)")
    t = s.text_only
    if t.source == "model" and s.n_text_only:
        where = f"{t.model or r.model.name_or_path}" + (
            f" at {t.base_url}, key from ${t.api_key_env}" if t.backend == "openai" else ""
        )
        lines.append(
            f"text-only: rejection-sampled from {where} ({t.backend}), k={t.k} no-tool answers "
            f"per query at temperature {t.temperature}, graded '{t.grader}', the first correct "
            "kept; pass rates in text_only_pass_rates.jsonl"
        )
    lines.append(
        "outputs: sft.jsonl, images/, rl.jsonl, eval.jsonl (procedural), rejects.jsonl, "
        "stats.json, cache/"
    )
    return "\n".join(lines)


def preflight(loaded: LoadedRecipe) -> None:
    """Nothing to refuse before the run directory: the plan already checked the inputs."""


def run(loaded: LoadedRecipe, run: RunDir) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from pixelctl.rundir import kill_point
    from pixelctl.synth.pipeline import run_synth

    synth = loaded.recipe.synth
    # checked here, not in plan(), so --dry-run still shows the plan on a machine without data
    problems = [
        f"synth.seeds: {src.path} not found (relative to the working directory)"
        for src in synth.seeds
        if not Path(src.path).is_file()
    ]
    if synth.writer.kind == "llm" and not os.environ.get(synth.writer.api_key_env):
        problems.append(
            f"synth.writer: the API key variable {synth.writer.api_key_env} is not set; export "
            "it (any non-empty value for a local server without auth)"
        )
    if problems:
        raise RecipeError(str(loaded.path or loaded.name), problems)
    console = Console(stderr=True)
    with Progress(
        "[bold]synth[/bold]",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        "{task.fields[info]}",
        console=console,
    ) as bar:
        task = bar.add_task("synth", total=None, info="")
        # metrics lines are keyed by `done` (seeds finished, this run and earlier ones): a
        # resumed run logs only past the last line already there, so no line appears twice
        # and the file reads like an uninterrupted run's
        last = {"done": run.last_logged("done")}

        def log(done: int, ev: dict[str, Any]) -> None:
            if done <= last["done"]:
                return
            last["done"] = done
            # `done`/`total` count the whole run; the rest is this process's share (a resumed
            # run skipped what an earlier one wrote), hence the prefix
            this = {k: ev[k] for k in ("written", "rejected", "skipped")} | ev["writer"]
            run.log_metrics(
                {
                    "done": done,
                    "total": ev["total"],
                    **{f"this_run_{k}": v for k, v in this.items()},
                }
            )

        def on_progress(ev: dict[str, Any]) -> None:
            done = ev["skipped"] + ev["written"] + ev["rejected"]
            wr = ev["writer"]
            bar.update(
                task,
                total=ev["total"],
                completed=done,
                info=f"{ev['rejected']} rejected, {wr['retries']} retries",
            )
            if done % METRICS_EVERY == 0:
                log(done, ev)
            kill_point(done)  # tests only: stop here at a chosen seed (a no-op otherwise)

        def on_scenes(split: str, done: int, n: int) -> None:
            bar.update(task, total=n, completed=done, info=f"drawing the {split} scenes")

        stats = run_synth(loaded.recipe, run.path, on_progress=on_progress, on_scenes=on_scenes)
    this = stats["this_run"]
    log(this["total"], this)
    run.update_meta(
        synth={
            "records": stats["records"],
            "by_kind": stats["by_kind"],
            "rejects": stats["rejects"]["total"],
            "tokens": stats["tokens"],
        }
    )
    _summary(console, stats)


def _summary(console: Any, stats: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="synth: records", show_header=True)
    table.add_column("kind")
    table.add_column("records", justify="right")
    for kind, n in stats["by_kind"].items():
        table.add_row(kind, str(n))
    table.add_row("[bold]total[/bold]", str(stats["records"]))
    console.print(table)
    ops = stats["operations_per_trajectory"]
    console.print(f"operations per trajectory: mean {ops['mean']}, histogram {ops['histogram']}")
    rej = stats["rejects"]
    console.print(f"rejects: {rej['total']} {rej['by_reason'] or ''}")
    if stats["tokens"].get("entries"):
        console.print(f"tokens: {stats['tokens']}")
    short = {k: v for k, v in stats["plan"]["shortfall"].items() if v > 0}
    if short:
        console.print(f"[yellow]fewer usable seeds than the recipe asks: short by {short}[/yellow]")
    leg = stats["plan"].get("procedural_legibility")
    if leg and not leg["zoom_helps"]:
        console.print(
            f"[yellow]procedural scenes: with these settings the answer's detail is not both "
            f"too small for the whole view and readable in a crop ({leg['canvases']}); "
            f"{leg['needs']}[/yellow]"
        )
