"""Run one stage: resolve the recipe (or a stored one), open the run directory, call the stage.

Resume contract: `--resume RUN_DIR` continues with the config stored in RUN_DIR. A recipe or
overrides given with it must resolve to the same values; otherwise the differing keys are named
and nothing runs (a resumed run that silently changed its config is not the run it claims).
A stage that has no checkpoint to continue from refuses and asks for `--restart` (which starts
the same run directory again from step 0). A run still running elsewhere is not resumed.

Chain links: every recipe path through a `<recipe>-latest` link is printed with the run it took
(`pixelctl.rundir.resolve_link`, the rule the viewer and reproduce share). Ctrl-C prints the
resume command and exits 130.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from pixelctl import tracking
from pixelctl.cli.derived import ignored_settings
from pixelctl.config import LoadedRecipe, RecipeError, load_recipe
from pixelctl.config.report import flatten
from pixelctl.errors import StageError
from pixelctl.rundir import RunDir, RunDirError, chain_paths, resolve_link, running
from pixelctl.stages import stage_module


def _err(msg: str, code: int = 2) -> int:
    typer.secho(msg, fg=typer.colors.RED, err=True)
    return code


def _note(msg: str) -> None:
    typer.secho(msg, fg=typer.colors.CYAN, err=True)


def show_chain(loaded: LoadedRecipe, stage: str) -> None:
    """Print which run each `-latest` path of this stage's section resolves to."""
    section = loaded.recipe.model_dump(mode="json").get(stage, {})
    for key, value in chain_paths({stage: section}):
        _note(f"{key}: {resolve_link(value)[1]}")


def resolve_for_resume(
    stage: str, run_dir: Path, recipe: str | None, overrides: list[str], restart: bool = False
) -> tuple[LoadedRecipe, RunDir]:
    run = RunDir.resume(run_dir, stage)
    run.restart = restart
    if run.resumed_status not in (None, "ok"):
        _note(f"resuming {run_dir} (it was {run.resumed_status})")
    stored = run.stored_config()
    loaded = load_recipe(run_dir / "config.yaml", [], raw=stored)
    if recipe is not None or overrides:
        wanted = load_recipe(recipe, overrides, raw=None if recipe else stored)
        a, b = (
            flatten(loaded.recipe.model_dump(mode="json")),
            flatten(wanted.recipe.model_dump(mode="json")),
        )
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        if diff:
            shown = ", ".join(f"{k} (stored {a.get(k)!r}, given {b.get(k)!r})" for k in diff[:8])
            raise RunDirError(
                f"--resume {run_dir}: the given recipe/overrides differ from the stored config: "
                f"{shown}{' …' if len(diff) > 8 else ''}. Resume without them, or start a new run."
            )
    return loaded, run


def execute(
    stage: str,
    loaded: LoadedRecipe,
    *,
    run: RunDir | None = None,
    tag: str | None = None,
    argv: list[str] | None = None,
) -> RunDir:
    """Plan, open (or reuse) the run directory, run the stage; errors propagate."""
    module = stage_module(stage)
    # a setting the engine would drop makes a different run than the recipe says. Checked on a
    # fresh run only: a resumed one was checked when it started, and its stored config writes
    # out every key, so "written" could no longer be told from "left at its default"
    if stage == "rl" and run is None and (ignored := ignored_settings(loaded.recipe)):
        raise RecipeError(str(loaded.path or loaded.name), ignored)
    plan = module.plan(loaded)  # cheap, and fails before a run directory exists
    module.preflight(loaded)  # e.g. no GPU for a cluster engine: refuse before any file
    r = loaded.recipe  # logging.wandb without its key or package: refuse before any file too
    remote = stage == "rl" and r.rl.engine == "openrlhf"  # W&B runs in the job, on the cluster
    tracking.preflight(r.logging, stage, wandb_here=not remote)
    if run is None:
        run = RunDir.create(
            loaded.recipe.launch.runs_root,
            stage,
            loaded.name,
            loaded.recipe.model_dump(mode="json"),
            tag=tag,
            argv=argv,
        )
    (run.path / "plan.txt").write_text(plan + "\n")
    typer.echo(f"run directory: {run.path}")
    show_chain(loaded, stage)
    with running(run):
        module.run(loaded, run)
    if run.latest_note:
        _note(run.latest_note)
    return run


def run_stage(
    stage: str,
    recipe: str | None,
    overrides: list[str],
    *,
    dry_run: bool,
    resume: Path | None,
    tag: str | None,
    restart: bool = False,
) -> int:
    """Returns the process exit code: 0 ok, 1 the stage failed, 2 bad input, 130 Ctrl-C."""
    try:
        if restart and resume is None:
            raise RunDirError("--restart goes with --resume RUN_DIR (it restarts that run)")
        if resume is not None:
            loaded, run = resolve_for_resume(stage, resume, recipe, overrides, restart)
        else:
            loaded, run = load_recipe(recipe, overrides), None
        for notice in loaded.notices:
            typer.secho(notice, fg=typer.colors.YELLOW, err=True)
        if dry_run:
            typer.echo(stage_module(stage).plan(loaded))
            show_chain(loaded, stage)
            return 0
        execute(stage, loaded, run=run, tag=tag, argv=sys.argv)
    except (RecipeError, RunDirError) as exc:
        return _err(str(exc))
    except StageError as exc:
        return _err(f"pixelctl {stage}: {exc}", code=1)
    except KeyboardInterrupt:
        return 130  # `running` recorded it and printed the resume command
    return 0
