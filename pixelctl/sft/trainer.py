"""The TRL adapter: recipe → `trl.SFTConfig`, model with a frozen vision tower, `SFTTrainer`.

What runs, top to bottom (`train`):
1. load the model (`resolve_model`, recipe dtype and attention) and its processor;
2. freeze every `visual.*` parameter (the ViT and its merger, as the reference) if
   `model.freeze_vision`;
3. build `SFTTrainer` with our `PixelCollator`, lr / scheduler / warm-up ratio / epochs /
   per-device batch / gradient accumulation (= global / (per-device × devices)) from the recipe;
4. train, resuming from the run's last `checkpoints/checkpoint-N` if there is one (step count,
   optimizer, scheduler and data position continue), logging to `metrics.jsonl`;
5. save the final model and processor to `<run>/model`, the folder `eval` and `rl` load.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pixelctl import tracking
from pixelctl.models.qwen import freeze_vision
from pixelctl.sft.records import Record

MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"


def resolve_device(recipe: Any) -> str:
    """'cuda' or 'cpu' for `launch.device` (auto: cuda when a GPU is visible)."""
    device = recipe.launch.device
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_count(recipe: Any, device: str) -> int:
    layout = recipe.launch.sft
    return 1 if device == "cpu" or layout.gpus == 0 else layout.gpus


def grad_accumulation(recipe: Any, devices: int) -> int:
    """global batch / (per-device batch × devices); an uneven split is an error, not a rounding."""
    sft = recipe.sft
    per_step = sft.per_device_batch_size * devices
    accum, rest = divmod(sft.global_batch_size, per_step)
    if rest or accum == 0:
        raise ValueError(
            f"sft.global_batch_size={sft.global_batch_size} is not a multiple of "
            f"sft.per_device_batch_size × devices = {sft.per_device_batch_size} × {devices}"
        )
    return accum


def sft_config(recipe: Any, output_dir: Path, device: str, devices: int) -> Any:
    """The `trl.SFTConfig` for this recipe (transformers 5: warm-up ratio as warmup_steps < 1)."""
    from trl import SFTConfig

    sft, cuda = recipe.sft, device == "cuda"
    return SFTConfig(
        output_dir=str(output_dir),
        learning_rate=sft.lr,
        lr_scheduler_type=sft.lr_scheduler,
        warmup_steps=sft.warmup_ratio,
        num_train_epochs=sft.epochs,
        max_steps=sft.max_steps,
        per_device_train_batch_size=sft.per_device_batch_size,
        gradient_accumulation_steps=grad_accumulation(recipe, devices),
        weight_decay=sft.weight_decay,
        max_grad_norm=sft.grad_clip,
        gradient_checkpointing=sft.gradient_checkpointing and cuda,
        # non-reentrant: with a frozen vision tower the first checkpointed inputs need no grad
        gradient_checkpointing_kwargs={"use_reentrant": False},
        save_strategy="steps",
        save_steps=sft.save_steps,
        logging_steps=sft.logging_steps,
        seed=sft.seed,
        data_seed=sft.seed,
        bf16=cuda and recipe.model.dtype == "bfloat16",
        fp16=cuda and recipe.model.dtype == "float16",
        use_cpu=not cuda,
        max_length=None,  # the collator never truncates; long records were skipped
        remove_unused_columns=False,  # the collator needs the `record` column
        report_to=tracking.report_to(recipe.logging),  # TensorBoard in <run>/tensorboard
        disable_tqdm=True,  # our rich bar instead
        dataloader_num_workers=2 if cuda else 0,
    )


def load_model(recipe: Any, device: str) -> tuple[Any, Any]:
    """The model (recipe dtype and attention) and its processor, from a local folder."""
    import torch
    from transformers import AutoModelForImageTextToText

    from pixelctl.models.resolve import resolve_model
    from pixelctl.sft.data import load_processor

    path = resolve_model(recipe.model.name_or_path)
    attn = recipe.model.attn_implementation
    if device == "cpu" and attn == "flash_attention_2":
        attn = "sdpa"  # flash-attn needs CUDA
    model = AutoModelForImageTextToText.from_pretrained(
        path, dtype=getattr(torch, recipe.model.dtype), attn_implementation=attn
    )
    return model, load_processor(recipe, path)


def last_checkpoint(run_path: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = run_path / CHECKPOINT_DIR
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def prepare_resume(run: Any, save_steps: int) -> str | None:
    """Before training a resumed run: rewind metrics.jsonl to the last checkpoint's step, so no
    step is logged twice; refuse (asking for --restart) when there is no checkpoint; with
    --restart, drop the checkpoints and the metrics and train again from step 0."""
    import shutil

    from pixelctl.errors import StageError

    if getattr(run, "restart", False):
        shutil.rmtree(run.path / CHECKPOINT_DIR, ignore_errors=True)
        shutil.rmtree(run.path / MODEL_DIR, ignore_errors=True)
        run.rewind_metrics(lambda rec: False, restart=True)
        return "restarting this run from step 0 (--restart)"
    resume = last_checkpoint(run.path)
    if resume is None:
        if getattr(run, "resumed", False):
            raise StageError(
                f"{run.path} has no checkpoint to resume from (one is saved every {save_steps} "
                f"steps); start it again from step 0 with `pixelctl sft --resume {run.path} "
                "--restart`"
            )
        return None
    step = checkpoint_step(resume)
    dropped = run.rewind_metrics(lambda rec: rec.get("step", 0) <= step, from_step=step)
    return f"resuming from {resume} (step {step}; {dropped} later metrics line(s) discarded)"


def checkpoint_step(folder: str | Path) -> int:
    return int(Path(folder).name.split("-")[-1])


def build_trainer(
    recipe: Any,
    run: Any,
    records: list[Record],
    device: str,
    callbacks: list[Any],
    resumed_from: int = 0,
) -> Any:
    """An `SFTTrainer` ready to `.train()`, with our collator and callbacks."""
    from transformers.trainer_callback import PrinterCallback

    from pixelctl.sft.collator import PixelCollator
    from pixelctl.sft.data import executor_settings, to_dataset
    from pixelctl.sft.hf_trainer import PixelSFTTrainer
    from pixelctl.sft.progress import MetricsCallback, RichProgress

    model, processor = load_model(recipe, device)
    if recipe.model.freeze_vision:
        freeze_vision(model)
    args = sft_config(recipe, run.path / CHECKPOINT_DIR, device, device_count(recipe, device))
    collator = PixelCollator(processor, mask=recipe.sft.mask, settings=executor_settings(recipe))
    trainer = PixelSFTTrainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=to_dataset(records),
        processing_class=processor,
        callbacks=[MetricsCallback(run, resumed_from), RichProgress(), *callbacks],
        vision_lr=recipe.sft.vision_lr,
    )
    trainer.remove_callback(PrinterCallback)
    tracking.point_trainer(trainer, recipe.logging, run.path)
    return trainer


def train(
    recipe: Any, run: Any, records: list[Record], *, callbacks: Sequence[Any] = ()
) -> dict[str, Any]:
    """Train (or resume) and save the final model to `<run>/model`; returns a summary."""
    device = resolve_device(recipe)
    resume = last_checkpoint(run.path)
    step0 = checkpoint_step(resume) if resume else 0
    trainer = build_trainer(recipe, run, records, device, list(callbacks), step0)
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    finally:
        for cb in trainer.callback_handler.callbacks:
            if hasattr(cb, "close"):
                cb.close()  # leave the terminal usable after Ctrl-C
    out = run.path / MODEL_DIR
    trainer.save_model(str(out))  # every rank: DeepSpeed gathers the shards
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(str(out))
    return {
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "resumed_from": step0,
        "model_dir": str(out),
    }
