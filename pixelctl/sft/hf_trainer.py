"""`SFTTrainer` with our two changes: a learning rate of its own for the vision tower, and a fix:
resuming reloads the weights through `from_pretrained`.

`sft.vision_lr`: the trainer builds its optimizer as usual (decay and no-decay groups), and each
group is split into the vision tower's parameters (`visual.*`) at `vision_lr` and the rest at
`lr`. The scheduler is created afterwards, so both follow the same schedule, each from its own
peak. (On the demo model, the tower trained at the text model's rate merged the features that
tell the answers apart; docs/demo.md.)

transformers 5.15 saves checkpoints with the checkpoint key names of the hub format
(`visual.*`, `model.layers.*` for Qwen2.5-VL), but `Trainer._load_from_checkpoint` (the path
without DeepSpeed) loads them with a plain non-strict `load_state_dict`, whose names are the
module's (`model.visual.*`, `model.language_model.*`). Every key misses, only a warning is
logged, and the "resumed" run silently continues from the base weights with the optimizer
state of the checkpoint. `from_pretrained` applies the key mapping, and we load its result
strictly, so a mismatch is an error instead. (DeepSpeed resumes from its own shards and is
unaffected.)
"""

from __future__ import annotations

from typing import Any

from trl import SFTTrainer

from pixelctl.models.qwen import is_vision


def split_vision_groups(
    groups: list[dict[str, Any]], names: dict[int, str], vision_lr: float
) -> list[dict[str, Any]]:
    """Each optimizer group split in two: its non-vision parameters as they were, its vision
    parameters at `vision_lr`; empty groups dropped."""
    out = []
    for g in groups:
        rest = [p for p in g["params"] if not is_vision(names[id(p)])]
        vis = [p for p in g["params"] if is_vision(names[id(p)])]
        if rest:
            out.append({**g, "params": rest})
        if vis:
            out.append({**g, "params": vis, "lr": vision_lr})
    return out


class PixelSFTTrainer(SFTTrainer):
    def __init__(self, *args: Any, vision_lr: float | None = None, **kwargs: Any) -> None:
        self.vision_lr = vision_lr
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model: Any = None) -> Any:
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if self.vision_lr is None or not fresh:
            return optimizer
        opt_model = self.model if model is None else model
        names = {id(p): n for n, p in opt_model.named_parameters()}
        groups = split_vision_groups(optimizer.param_groups, names, self.vision_lr)
        optimizer.param_groups.clear()  # no state yet: regrouping before the first step is safe
        for group in groups:
            optimizer.add_param_group(group)
        return optimizer

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        model = self.model if model is None else model
        saved = type(model).from_pretrained(resume_from_checkpoint, dtype=model.dtype)
        model.load_state_dict(saved.state_dict(), strict=True)
        del saved
