"""`pixelctl sft`: warm-start SFT with TRL's SFTTrainer and the paper's loss masks (docs/method.md §6).

plan: the numbers (devices, accumulation, schedule, mask) and, on GPUs, the accelerate command.
run:  validate the records (the shared reject rule, `pixelctl.rejects`: every reject in
      rejects.jsonl, a one-line summary, refusal above `max_reject_fraction`), freeze the kept
      ones into records.jsonl, then train in this process (CPU, one GPU) or under accelerate
      (several GPUs / DeepSpeed); a resumed run reuses records.jsonl and its last checkpoint,
      with metrics.jsonl cut back to that checkpoint's step (no step twice). A resume with no
      checkpoint refuses and asks for --restart.
The logic lives in pixelctl/sft/; this module only orchestrates.
"""

from __future__ import annotations

import subprocess

from rich.console import Console

from pixelctl.config import LoadedRecipe, RecipeError
from pixelctl.errors import StageError
from pixelctl.rundir import RunDir
from pixelctl.sft import gpu
from pixelctl.sft.records import FROZEN_FILE, SFTDataError, resolve_sources


def _source(loaded: LoadedRecipe) -> str:
    return str(loaded.path) if loaded.path else "<recipe>"


def plan(loaded: LoadedRecipe) -> str:
    from pixelctl.sft.trainer import device_count, grad_accumulation, resolve_device

    r, sft = loaded.recipe, loaded.recipe.sft
    warning = None
    try:
        data = ", ".join(str(f) for f in resolve_sources(sft.data))
    except SFTDataError as exc:  # a dry run before synth has run: show the plan, warn
        data, warning = ", ".join(str(d) for d in sft.data) + "  (MISSING)", str(exc)
    try:
        device = resolve_device(r)
        devices = device_count(r, device)
        accum = grad_accumulation(r, devices)
    except ValueError as exc:
        raise RecipeError(_source(loaded), [str(exc)]) from None
    steps = f"max_steps {sft.max_steps}" if sft.max_steps > 0 else f"{sft.epochs} epochs"
    lines = [
        f"sft: {r.model.name_or_path} ({r.model.dtype}, vision tower "
        f"{'frozen' if r.model.freeze_vision else 'trained'})",
        f"  data: {data}",
        f"  mask: {sft.mask}",
        f"  device: {device} × {devices}; batch {sft.global_batch_size} = "
        f"{sft.per_device_batch_size} per device × {devices} × {accum} accumulation",
        f"  lr {sft.lr}{'' if sft.vision_lr is None else f' (vision tower {sft.vision_lr})'} "
        f"{sft.lr_scheduler}, warm-up {sft.warmup_ratio:.0%}, {steps}, "
        f"save every {sft.save_steps} steps",
    ]
    if gpu.needs_launcher(r, device):
        cmd = gpu.render_command(gpu.launch_command(r, "<RUN_DIR>"))
        lines.append(f"  launch (ZeRO-{sft.zero_stage}, {r.launch.sft.nodes} node(s)): {cmd}")
    if warning:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


def preflight(loaded: LoadedRecipe) -> None:
    """The data must exist before a run directory is made (the plan only warns)."""
    try:
        resolve_sources(loaded.recipe.sft.data)
    except SFTDataError as exc:
        raise StageError(str(exc)) from None


def run(loaded: LoadedRecipe, run: RunDir) -> None:
    from pixelctl.sft.trainer import prepare_resume, resolve_device

    console = Console()
    recipe = loaded.recipe
    note = prepare_resume(run, recipe.sft.save_steps)
    if note:
        console.print(note)
    records = _records(loaded, run, console)
    run.update_meta(sft={"records": len(records), "model_dir": "model"})
    device = resolve_device(recipe)
    if gpu.needs_launcher(recipe, device):
        _launch(loaded, run, console)
        return
    from pixelctl.sft.trainer import train

    summary = train(recipe, run, records)
    run.update_meta(sft={"records": len(records), **summary})
    console.print(f"sft done: step {summary['global_step']}, model in {summary['model_dir']}")


def _records(loaded: LoadedRecipe, run: RunDir, console: Console) -> list:
    """The frozen records of a resumed run, or freshly validated ones (skips reported)."""
    from pixelctl import rejects
    from pixelctl.sft.records import read_frozen, write_frozen

    if (run.path / FROZEN_FILE).is_file():
        records = read_frozen(run.path)
        console.print(f"resuming with the {len(records)} records frozen in {FROZEN_FILE}")
        return records
    from pixelctl.sft.data import load_for_training, load_processor
    from pixelctl.sft.report import show_data

    try:
        processor = load_processor(loaded.recipe)
    except ValueError as exc:  # model.name_or_path is not a local folder
        raise StageError(f"model.name_or_path: {exc}") from None
    try:
        result = load_for_training(loaded.recipe, processor)
    except SFTDataError as exc:
        raise StageError(str(exc)) from None
    show_data(result, console)
    file = rejects.write(run.path / rejects.REJECTS_FILE, result.skipped)
    kept = len(result.records)
    console.print(rejects.summary("sft data", kept, result.skipped, file))
    if not result.records:
        raise StageError(f"sft.data: no valid record left; see {file}")
    rejects.enforce("sft data", kept, result.skipped, loaded.recipe.max_reject_fraction, file)
    write_frozen(result.records, run.path)
    return result.records


def _launch(loaded: LoadedRecipe, run: RunDir, console: Console) -> None:
    argv = gpu.write_launch_files(loaded.recipe, run.path)
    shown = gpu.render_command(argv)
    if loaded.recipe.launch.sft.nodes > 1:
        console.print(f"multi-node: run on every node (NODE_RANK 0..N-1):\n  {shown}")
        return
    console.print(f"launching: {shown}")
    code = subprocess.run(argv, check=False).returncode
    if code:
        raise StageError(f"the training processes exited with status {code} (see their log above)")
