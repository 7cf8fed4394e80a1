"""`SFTTrainer` with our three changes: a learning rate of its own for the vision tower, the fused
LM head scoring only the trained positions on CPU, and a fix: resuming reloads the weights
through `from_pretrained`.

`sft.vision_lr`: the trainer builds its optimizer as usual (decay and no-decay groups), and each
group is split into the vision tower's parameters (`visual.*`) at `vision_lr` and the rest at
`lr`. The scheduler is created afterwards, so both follow the same schedule, each from its own
peak. (On the demo model, the tower trained at the text model's rate merged the features that
tell the answers apart; docs/demo.md.)

The fused LM head (TRL 1.16, `add_fused_lm_head`) projects hidden states to log-probabilities in
vocabulary chunks. On Triton devices it scores only the positions with a label; everywhere else
it scores every position and zeroes the unlabelled ones, so that a compiler (Neuron's) sees the
same tile shapes every batch. Nothing is compiled on CPU, where the trained turns are a small
part of a pixel-space trajectory (the image tokens and observations are masked), and scoring
every position took a third of a demo step. `labelled_positions_only` makes TRL take its compact
path on CPU too: the loss, entropy, token accuracy and gradients are the same (tests).

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

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trl.trainer.utils as trl_utils
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


@contextmanager
def labelled_positions_only() -> Iterator[None]:
    """Within: TRL's fused LM head scores only the labelled positions on CPU as well (its
    `compact` branch, chosen by `trl.trainer.utils._use_triton`, which is asked nothing else)."""
    uses_triton = trl_utils._use_triton
    trl_utils._use_triton = lambda device: device.type == "cpu" or uses_triton(device)
    try:
        yield
    finally:
        trl_utils._use_triton = uses_triton


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

    def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        with labelled_positions_only():
            return super().compute_loss(model, inputs, *args, **kwargs)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        model = self.model if model is None else model
        saved = type(model).from_pretrained(resume_from_checkpoint, dtype=model.dtype)
        model.load_state_dict(saved.state_dict(), strict=True)
        del saved
