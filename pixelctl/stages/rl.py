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
    from pixelctl.engines.openrlhf import submit

    return submit


def _data(loaded: LoadedRecipe):
    """Every record checked up front (fields, answers, image headers; `pixelctl.rejects`)."""
    from pixelctl.queries import load_queries

    rl = loaded.recipe.rl
    if not rl.data:
        raise StageError("rl.data is empty; list RL prompt files or a synth run directory")
    try:
        return load_queries(rl.data)
    except FileNotFoundError as exc:
        raise StageError(f"rl.data: {exc}") from None


def preflight(loaded: LoadedRecipe) -> None:
    """Refuse before a run directory exists: the OpenRLHF engine needs a GPU Ray cluster; the
    local engine needs its data (the plan only warns, so --dry-run works before synth ran)."""
    if loaded.recipe.rl.engine == "openrlhf":
        _openrlhf().preflight(loaded.recipe.launch.rl.ray_address)
        return
    _data(loaded)
    from pixelctl.models.resolve import resolve_model
    from pixelctl.rundir import resolve_link

    start = loaded.recipe.rl.init_from or loaded.recipe.model.name_or_path
    try:
        resolve_model(start)
    except ValueError as exc:
        raise StageError(f"rl.init_from: {exc} ({resolve_link(start)[1]})") from None


def plan(loaded: LoadedRecipe) -> str:
    r = loaded.recipe
    if r.rl.engine == "openrlhf":
        return _openrlhf().plan(loaded)
    from pixelctl.rl.schedule import plan_schedule

    try:
        data = _data(loaded)
        n, shown = len(data.queries), data.summary()
    except StageError as exc:  # a dry run before synth has run: show the plan, warn
        n, shown = r.rl.expected_prompts or 1, f"MISSING ({exc}); planned for expected_prompts"
    p = plan_schedule(r.rl, max(n, 1))
    rl = r.rl
    return "\n".join(
        [
            "pixelctl rl — local engine (one process)",
            f"  start from     {rl.init_from or r.model.name_or_path}",
            f"  data           {', '.join(rl.data)}: {shown}",
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

    from pixelctl import rejects
    from pixelctl.engines.local.loop import train
    from pixelctl.models.resolve import resolve_model

    console = Console()
    data = _data(loaded)
    reject_file = rejects.write(run_dir.path / rejects.REJECTS_FILE, data.rejects)
    report = {"queries": len(data.queries), "rejects": [str(x) for x in data.rejects]}
    (run_dir.path / "data_report.json").write_text(json.dumps(report, indent=2))
    for reject in data.rejects[:5]:
        console.print(f"[yellow]rejected[/yellow] {reject}")
    console.print(rejects.summary("rl data", len(data.queries), data.rejects, reject_file))
    if not data.queries:
        raise StageError(f"no usable RL prompts in {r.rl.data} (see {reject_file})")
    rejects.enforce("rl data", len(data.queries), data.rejects, r.max_reject_fraction, reject_file)
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

        def progress(done: int, total: int, last: dict | None) -> None:
            info = (
                ""
                if last is None  # the start: the total is known before the first round
                else f"acc {last['accuracy']:.2f}  RaPR {last['rapr']:.2f}  "
                f"calls {last['calls_per_rollout']:.2f}  loss {last['loss']:.4f}"
            )
            bar.update(task, completed=done, total=total, info=info)

        final = train(r, run_dir, data, model, progress=progress)
    console.print(f"final model: {final}")
