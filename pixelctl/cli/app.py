"""The `pixelctl` command line. Parsing only: stages, engines and heavy imports live elsewhere."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from pixelctl import __version__
from pixelctl.cli.tool import app as tool_app
from pixelctl.config import STAGES, LoadedRecipe, RecipeError, load_recipe


def _examples(*lines: str) -> str:
    body = "\n\n".join(f"  $ {line}" for line in lines)
    return f"[bold]Examples[/bold]\n\n{body}"


app = typer.Typer(
    name="pixelctl",
    help="Reproduce and extend Pixel Reasoner: synth → sft → rl → eval on one recipe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    epilog=_examples(
        "pixelctl validate recipes/7b_a800.yaml --stage rl",
        "pixelctl validate recipes/tiny_cpu.yaml",
        "pixelctl sft recipes/tiny_cpu.yaml sft.lr=2.0e-5 --tag lr2e-5",
        "pixelctl env",
    ),
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pixelctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Reproduce and extend Pixel Reasoner: synth → sft → rl → eval on one recipe."""


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _split_args(recipe: str | None, overrides: list[str] | None) -> tuple[str | None, list[str]]:
    """`pixelctl sft --resume DIR a.b=1`: Typer binds `a.b=1` to RECIPE; give it back."""
    rest = list(overrides or [])
    if recipe is not None and "=" in recipe and not Path(recipe).exists():
        return None, [recipe, *rest]
    return recipe, rest


def _load(recipe: str | None, overrides: list[str]) -> LoadedRecipe:
    try:
        return load_recipe(recipe, overrides)
    except RecipeError as exc:
        raise _fail(str(exc)) from None


# ----------------------------------------------------------------------------- validate
@app.command(
    epilog=_examples(
        "pixelctl validate recipes/7b_a800.yaml",
        "pixelctl validate recipes/tiny_cpu.yaml rl.rollout.n_samples=4 --stage rl",
        "pixelctl validate recipes/7b_a800.yaml --json > resolved.json",
    )
)
def validate(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value overrides (YAML values).")
    ] = None,
    stage: Annotated[
        str | None, typer.Option(help=f"Only show one stage: {', '.join(STAGES)}.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the resolved recipe as JSON.")
    ] = False,
) -> None:
    """Check a recipe: every error at once, what it changes from the defaults, derived numbers."""
    from pixelctl.cli.derived import derive
    from pixelctl.cli.views import show_validation

    if stage is not None and stage not in STAGES:
        raise _fail(f"--stage {stage!r}: choose one of {', '.join(STAGES)}")
    loaded = _load(str(recipe), list(overrides or []))
    derived, problems = derive(loaded.recipe)
    if as_json:
        typer.echo(json.dumps(loaded.recipe.model_dump(mode="json"), indent=2))
    else:
        show_validation(loaded, derived, problems, stage)
    if problems:
        raise typer.Exit(1)


# ----------------------------------------------------------------------------- env
@app.command(epilog=_examples("pixelctl env", "pixelctl env --stack gpu --json"))
def env(
    stack: Annotated[str, typer.Option(help="Which pins to check: cpu or gpu.")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Versions, devices and whether the pinned stack is installed (paste it into bug reports)."""
    from pixelctl.cli.views import show_env
    from pixelctl.envinfo import devices, git_state, pin_status

    if stack not in ("cpu", "gpu"):
        raise _fail(f"--stack {stack!r}: choose cpu or gpu")
    pins = pin_status(stack)
    sha, dirty = git_state()
    info = {
        "pixelctl": __version__,
        "python": sys.version.split()[0],
        "git_sha": sha,
        "git_dirty": dirty,
        "devices": devices(),
        "pins": {
            p.package: {"wanted": p.wanted, "installed": p.installed, "ok": p.ok} for p in pins
        },
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        show_env(info)


# ----------------------------------------------------------------------------- score
@app.command(
    epilog=_examples(
        "pixelctl score runs/eval/7b_a800-latest/samples.jsonl",
        "pixelctl score sample.eval_infovqa.jsonl --benchmark infovqa --json",
    ),
)
def score(
    path: Annotated[Path, typer.Argument(help="Per-sample JSONL: ours, or the authors' layout.")],
    benchmark: Annotated[
        str | None, typer.Option(help="Score every line as this benchmark (else from the qid).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object keyed by benchmark.")
    ] = False,
) -> None:
    """Re-score predictions: the official metric (accuracy or ANLS) and the paper-compat score."""
    from pixelctl.cli.score import score_command

    raise typer.Exit(score_command(path, benchmark, as_json))


# ----------------------------------------------------------------------------- view
@app.command(
    epilog=_examples(
        "pixelctl view runs/rl/tiny_cpu-latest",
        "pixelctl view runs/demo/demo_cpu-full-latest --out /tmp/report",
    ),
)
def view(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, a demo directory or runs/.")],
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default RUN_DIR/report).")
    ] = None,
) -> None:
    """Write a static HTML report: trajectories with boxes and crops, eval failures, curves."""
    from pixelctl.viewer import run_notes, write_report

    try:
        page = write_report(run_dir, out)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    for note in run_notes(run_dir):  # killed / interrupted / failed runs, with how to resume
        typer.secho(note, fg=typer.colors.YELLOW, err=True)
    typer.echo(f"report: {page}")


# ----------------------------------------------------------------------------- demo
@app.command(
    epilog=_examples("pixelctl demo", "pixelctl demo --size small --out /tmp/runs"),
)
def demo(
    size: Annotated[
        str,
        typer.Option(
            help="full (≈9 min on 2 cores, +2½ min the first time: the model build) "
            "or small (CI, ≈1 min)."
        ),
    ] = "full",
    out: Annotated[Path, typer.Option(help="Where the demo directory is created.")] = Path("runs"),
    seed: Annotated[int, typer.Option(help="Training seed (SFT and RL); same scenes.")] = 0,
    trap: Annotated[
        bool,
        typer.Option(
            "--trap",
            help="The learning trap instead: RL from one SFT checkpoint with curiosity on "
            "(α=0.5) and off (α=0), 3 seeds each; curves in trap.svg and the report.",
        ),
    ] = False,
) -> None:
    """The whole pipeline on the tiny model: synth → sft → rl → eval, with a summary table."""
    from pixelctl.cli.demo import SIZES, run_demo, run_trap
    from pixelctl.errors import StageError

    if size not in SIZES:
        raise _fail(f"--size {size!r}: choose one of {', '.join(SIZES)}")
    try:
        if trap:
            run_trap(out, size)
        else:
            run_demo(out, size, seed=seed)
    except (RecipeError, StageError) as exc:
        raise _fail(f"pixelctl demo: {exc}", code=1) from None


# ----------------------------------------------------------------------------- reproduce
@app.command(
    epilog=_examples(
        "pixelctl reproduce recipes/7b_a800.yaml",
        "pixelctl reproduce recipes/7b_a800.yaml --fetch-data data",
        "make reproduce",
    ),
)
def reproduce(
    recipe: Annotated[Path, typer.Argument(help="The recipe to reproduce.")] = Path(
        "recipes/7b_a800.yaml"
    ),
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides.")] = None,
    fetch_data: Annotated[
        Path | None,
        typer.Option(help="First download the released SFT/RL datasets into this folder."),
    ] = None,
) -> None:
    """The paper's pipeline (sft → rl → eval) on a GPU cluster; without GPUs, the plan."""
    from pixelctl.cli.launch import execute
    from pixelctl.cli.reproduce import fetch_datasets, has_gpus, plan
    from pixelctl.errors import StageError

    loaded = _load(str(recipe), list(overrides or []))
    typer.echo(plan(loaded))
    if fetch_data is not None:
        try:
            for kind, folder in fetch_datasets(fetch_data).items():
                typer.echo(f"{kind} data: {folder}")
        except RuntimeError as exc:
            raise _fail(str(exc), code=1) from None
    if not has_gpus():
        raise _fail(
            "\nno GPU on this machine: nothing was run. Run this on the cluster's head node "
            "after `make install-gpu`, or try the whole pipeline here with `pixelctl demo`.",
            code=1,
        )
    try:
        for stage in ("sft", "rl", "eval"):
            execute(stage, loaded, argv=["pixelctl", stage, str(recipe), *(overrides or [])])
    except StageError as exc:
        raise _fail(f"pixelctl reproduce: {exc}", code=1) from None


# ----------------------------------------------------------------------------- stages
_STAGE_HELP = {
    "synth": "Build warm-start trajectories from annotated seeds (LLM or offline templates).",
    "sft": "Warm-start instruction tuning with TRL's SFTTrainer and the paper's loss masks.",
    "rl": "Curiosity-driven GRPO with selective sample replay (OpenRLHF or the local engine).",
    "eval": "Evaluate on V*, TallyQA-Complex, InfographicsVQA and MVBench.",
}


def _sft_inspect(recipe: str | None, overrides: list[str], n: int) -> None:
    from rich.console import Console

    from pixelctl.errors import StageError
    from pixelctl.sft.inspect import inspect

    loaded = _load(recipe, overrides)
    try:
        inspect(loaded, n, Console())
    except StageError as exc:
        raise _fail(f"pixelctl sft --inspect: {exc}", code=1) from None


def _fetch_released(recipe: str | None, overrides: list[str]) -> None:
    """`pixelctl eval RECIPE --fetch`: bring `eval.released`'s model and data into the cache."""
    from pixelctl.evaluation.released import fetch_released
    from pixelctl.hub import HubUnavailable

    loaded = _load(recipe, overrides)
    if loaded.recipe.eval.released is None:
        raise _fail("--fetch needs eval.released in the recipe (see recipes/eval_released.yaml)")
    try:
        fetch_released(loaded, log=typer.echo)
    except HubUnavailable as exc:
        raise _fail(f"pixelctl eval --fetch: {exc}", code=1) from None


def _stage_command(stage: str):
    def command(
        recipe: Annotated[
            str | None, typer.Argument(help="Recipe YAML (optional with --resume).")
        ] = None,
        overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides.")] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Show the plan; run nothing.")
        ] = False,
        resume: Annotated[Path | None, typer.Option(help="Continue this run directory.")] = None,
        tag: Annotated[str | None, typer.Option(help="Suffix for the run directory name.")] = None,
        # a default (not Annotated) because `hidden` depends on the stage being built
        inspect: int | None = typer.Option(
            None,
            help="Show N examples with the trained tokens highlighted; train nothing.",
            hidden=stage != "sft",
        ),
        fetch: bool = typer.Option(
            False,
            "--fetch",
            help="First download eval.released's model and data into the cache (once).",
            hidden=stage != "eval",
        ),
        restart: Annotated[
            bool, typer.Option(help="With --resume: start that run again from step 0.")
        ] = False,
    ) -> None:
        from pixelctl.cli.launch import run_stage

        recipe_path, ovs = _split_args(recipe, overrides)
        if inspect is not None:
            if stage != "sft":
                raise _fail(f"--inspect belongs to pixelctl sft, not pixelctl {stage}")
            _sft_inspect(recipe_path, ovs, inspect)
            return
        if fetch:
            if stage != "eval" or recipe_path is None:
                raise _fail("--fetch belongs to pixelctl eval RECIPE (not with --resume alone)")
            _fetch_released(recipe_path, ovs)
        if recipe_path is None and resume is None:
            raise _fail(
                f"give a recipe (e.g. pixelctl {stage} recipes/tiny_cpu.yaml) or --resume RUN_DIR"
            )
        code = run_stage(
            stage, recipe_path, ovs, dry_run=dry_run, resume=resume, tag=tag, restart=restart
        )
        raise typer.Exit(code)

    command.__doc__ = _STAGE_HELP[stage]
    return command


for _stage in STAGES:
    examples = [
        f"pixelctl {_stage} recipes/tiny_cpu.yaml",
        f"pixelctl {_stage} recipes/7b_a800.yaml --dry-run",
        f"pixelctl {_stage} recipes/tiny_cpu.yaml {_stage}.seed=1 --tag seed1",
        f"pixelctl {_stage} --resume runs/{_stage}/tiny_cpu-20261123-120000",
    ]
    if _stage == "sft":
        examples.insert(1, "pixelctl sft recipes/tiny_cpu.yaml --inspect 2")
    if _stage == "eval":
        examples.insert(1, "pixelctl eval recipes/eval_released.yaml --fetch")
    app.command(name=_stage, epilog=_examples(*examples))(_stage_command(_stage))


app.add_typer(
    tool_app,
    name="tool",
    help="Run a tool call on images exactly as a rollout would.",
    epilog=_examples(
        "pixelctl tool run --image scene.jpg --response - < turn.txt",
        "pixelctl tool run --image a.jpg --mode strict --bounds eval --response - < turn.txt",
    ),
)


def main() -> None:
    # transformers' per-file tqdm bars ("Loading weights", "Writing model shards") drown the
    # stages' own progress; HF_HUB_DISABLE_PROGRESS_BARS=0 brings them back
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    app()
