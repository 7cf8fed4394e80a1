"""`pixelctl rl`: curiosity-driven GRPO with selective sample replay.

`rl.engine: local` runs the single-process engine (pixelctl/engines/local) on this machine;
`rl.engine: openrlhf` renders and submits the OpenRLHF 0.11.2 Ray job (pixelctl/engines/openrlhf).
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pixelctl.config import LoadedRecipe
from pixelctl.errors import StageError
from pixelctl.rundir import RunDir


def _openrlhf():
    from pixelctl.engines.openrlhf import stage

    return stage


def _data(loaded: LoadedRecipe):
    from pixelctl.queries import load_queries

    rl = loaded.recipe.rl
    if not rl.data:
        raise StageError("rl.data is empty; list RL prompt files or a synth run directory")
    try:
        return load_queries(rl.data)
    except FileNotFoundError as exc:
        raise StageError(f"rl.data: {exc}") from None


def preflight(loaded: LoadedRecipe) -> None:
    """The OpenRLHF engine needs a GPU Ray cluster; say so before a run directory exists."""
    if loaded.recipe.rl.engine == "openrlhf":
        _openrlhf().preflight(loaded.recipe.launch.rl.ray_address)


def plan(loaded: LoadedRecipe) -> str:
    r = loaded.recipe
    if r.rl.engine == "openrlhf":
        return _openrlhf().plan(loaded)
    from pixelctl.rl.schedule import plan_schedule

    data = _data(loaded)
    p = plan_schedule(r.rl, max(len(data.queries), 1))
    rl = r.rl
    return "\n".join(
        [
            "pixelctl rl — local engine (one process)",
            f"  start from     {rl.init_from or r.model.name_or_path}",
            f"  data           {', '.join(rl.data)}: {data.summary()}",
            f"  rounds         {p.describe()}; {rl.rollout.n_samples} samples per prompt",
            f"  updates        {p.steps_per_round} optimizer steps per round, {p.total_steps} in total "
            f"({p.warmup_steps} warm-up), lr {rl.optim.lr}",
            f"  reward         {rl.reward.mode} (α={rl.reward.alpha}, β={rl.reward.beta}, "
            f"H={rl.reward.H}, N={rl.reward.N}); filter={rl.replay.zero_signal_filter}, "
            f"SSR={rl.replay.ssr}",
        ]
    )


def run(loaded: LoadedRecipe, run_dir: RunDir) -> None:
    r = loaded.recipe
    if r.rl.engine == "openrlhf":
        _openrlhf().run(loaded, run_dir)
        return
    import json

    from pixelctl.engines.local.loop import train
    from pixelctl.models.resolve import resolve_model

    console = Console()
    data = _data(loaded)
    report = {"queries": len(data.queries), "rejects": [str(x) for x in data.rejects]}
    (run_dir.path / "data_report.json").write_text(json.dumps(report, indent=2))
    for reject in data.rejects[:5]:
        console.print(f"[yellow]rejected[/yellow] {reject}")
    if not data.queries:
        raise StageError(
            f"no usable RL prompts in {r.rl.data} (see {run_dir.path}/data_report.json)"
        )
    model = resolve_model(r.rl.init_from or r.model.name_or_path)
    console.print(f"policy: {model}  data: {data.summary()}")
    columns = (
        TextColumn("rl round {task.completed}/{task.total}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("rl", total=None, info="")

        def progress(done: int, total: int, last: dict) -> None:
            info = (
                f"acc {last['accuracy']:.2f}  RaPR {last['rapr']:.2f}  "
                f"calls {last['calls_per_rollout']:.2f}  loss {last['loss']:.4f}"
            )
            bar.update(task, completed=done, total=total, info=info)

        final = train(r, run_dir, data, model, progress=progress)
    console.print(f"final model: {final}")
