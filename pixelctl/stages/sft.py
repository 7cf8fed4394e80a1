"""`pixelctl sft`: warm-start SFT with TRL's SFTTrainer and the paper's loss masks (docs/method.md §6).

plan: the numbers (devices, accumulation, schedule, mask) and, on GPUs, the accelerate command.
run:  validate the records (skips reported on screen and in skipped.jsonl), freeze the kept ones
      into records.jsonl, then train in this process (CPU, one GPU) or under accelerate
      (several GPUs / DeepSpeed); a resumed run reuses records.jsonl and its last checkpoint.
The logic lives in pixelctl/sft/; this module only orchestrates.
"""

from __future__ import annotations

import subprocess

from rich.console import Console

from pixelctl.config import LoadedRecipe, RecipeError
from pixelctl.errors import StageError
from pixelctl.rundir import RunDir
from pixelctl.sft import launch as gpu
from pixelctl.sft.records import FROZEN_FILE, RecordError, resolve_sources


def _source(loaded: LoadedRecipe) -> str:
    return str(loaded.path) if loaded.path else "<recipe>"


def plan(loaded: LoadedRecipe) -> str:
    from pixelctl.sft.trainer import device_count, grad_accumulation, resolve_device

    r, sft = loaded.recipe, loaded.recipe.sft
    try:
        files = resolve_sources(sft.data)
    except RecordError as exc:
        raise StageError(str(exc)) from None
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
        f"  data: {', '.join(str(f) for f in files)}",
        f"  mask: {sft.mask}",
        f"  device: {device} × {devices}; batch {sft.global_batch_size} = "
        f"{sft.per_device_batch_size} per device × {devices} × {accum} accumulation",
        f"  lr {sft.lr} {sft.lr_scheduler}, warm-up {sft.warmup_ratio:.0%}, {steps}, "
        f"save every {sft.save_steps} steps",
    ]
    if gpu.needs_launcher(r, device):
        cmd = gpu.render_command(gpu.launch_command(r, "<RUN_DIR>"))
        lines.append(f"  launch (ZeRO-{sft.zero_stage}, {r.launch.sft.nodes} node(s)): {cmd}")
    return "\n".join(lines)


def preflight(loaded: LoadedRecipe) -> None:
    """Nothing to refuse before the run directory: the plan already checked the inputs."""


def run(loaded: LoadedRecipe, run: RunDir) -> None:
    from pixelctl.sft.trainer import resolve_device

    console = Console()
    recipe = loaded.recipe
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
    from pixelctl.sft.records import read_frozen, write_frozen, write_skipped

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
    except RecordError as exc:
        raise StageError(str(exc)) from None
    show_data(result, console)
    write_skipped(result.skipped, run.path / "skipped.jsonl")
    if not result.records:
        raise StageError(f"sft.data: no valid record left; see {run.path / 'skipped.jsonl'}")
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
