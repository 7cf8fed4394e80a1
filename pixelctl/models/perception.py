"""Perception pretraining: the demo model learns to name what a panel shows before the demo starts.

Qwen2.5-VL comes to Pixel Reasoner already able to see: what the zoom adds is resolution, not
the ability to name a shape. A random-init tiny model has neither, and the demo's 2-layer model
did not learn both in the SFT budget (docs/demo.md: at 560 SFT steps each seed read one task of
two). So `builtin:tiny-qwen2.5-vl-demo` (v3) is built in two steps: the random init of
`pixelctl.models.tiny`, then `pretrain` below, a short single-turn captioning run:

    user:      <image> What is inside the small red-framed panel?
    assistant: It shows a black star.

on pictures that `pixelctl.synth.procedural.panel_picture` draws: the demo's panel filling the
centre of a 224² picture, resampled down and up by 6–9× (the blur the executor's zoom of a 6-px
detail gives). The pictures come from their own seed namespace, never a demo scene; the prompt
has no tools, no options and no answer format, so the demo's untrained row still scores 0 and
SFT still has to teach the tool call, the crop and `\\boxed{}`. Only the reply is trained.

Heavy imports (torch, transformers) happen inside the functions.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROMPT = "What is inside the small red-framed panel?"
HELD_OUT = 10**6  # held-out pictures are drawn from indices >= this, training ones below


@dataclass(frozen=True)
class PerceptionArgs:
    """The pretraining run; it is part of the build (its settings go into the build info)."""

    steps: int = 300  # ~2 min on 2 cores; 53 of 64 held-out captions exact (docs/demo.md)
    batch_size: int = 16
    lr: float = 3.0e-3  # the demo's SFT rates: text model 3e-3, vision tower 1e-3
    vision_lr: float = 1.0e-3
    warmup_steps: int = 20  # then cosine to 0
    side: int = 224  # the demo's crop size (executor crop bounds ~224²)
    detail_px: float = 48.0  # the detail in the demo's crop
    blur: tuple[float, float] = (6.0, 9.0)
    seed: int = 0
    n_held_out: int = 64


def reply(shows: str) -> str:
    return f"It shows {shows}."


def picture(index: int, args: PerceptionArgs) -> tuple[Any, str]:
    """(image, reply) of one pretraining picture; the same index gives the same picture."""
    from pixelctl.synth.procedural import panel_picture

    rng = random.Random(f"perception-{args.seed}-{index}")
    image, shows = panel_picture(rng, args.side, args.detail_px, args.blur)
    return image, reply(shows)


def prompt_text(processor: Any) -> str:
    """The user turn (one image, then `PROMPT`) through the chat template, ready for a reply."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode(processor: Any, items: list[tuple[Any, str]]) -> tuple[dict[str, Any], Any]:
    """Model inputs for (image, reply) pairs and labels that train the reply and its end token
    only (`pixelctl.masks.label_mask`, as SFT does: prompt, image and padding are -100)."""
    import torch

    from pixelctl.masks import chat_tokens, label_mask

    prompt = prompt_text(processor)
    end = processor.tokenizer.eos_token
    batch = processor(
        text=[prompt + text + end for _, text in items],
        images=[image for image, _ in items],
        return_tensors="pt",
        padding=True,
    )
    tokens = chat_tokens(processor.tokenizer)
    ids = batch["input_ids"]
    trained = torch.zeros_like(ids, dtype=torch.bool)
    for row, n in enumerate(batch["attention_mask"].sum(1).tolist()):  # padding is on the right
        mask = label_mask(ids[row, :n].tolist(), ["user", "assistant"], [1], tokens)
        trained[row, :n] = torch.tensor(mask)
    return dict(batch), ids.masked_fill(~trained, -100)


def pretrain(
    model_dir: Path,
    args: PerceptionArgs = PerceptionArgs(),
    on_step: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train the model saved in `model_dir` in place; return what the build info records.
    `on_step(done, total, loss)` is called after every step (the builder logs progress)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    started = time.monotonic()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        losses = _train(model, processor, args, on_step)
    exact = held_out_exact(model, processor, args)
    model.save_pretrained(model_dir)
    return {
        **asdict(args),
        "first_loss": round(losses[0], 4),
        "last_loss": round(losses[-1], 4),
        "held_out_exact": exact,
        "seconds": round(time.monotonic() - started, 1),
    }


def _train(
    model: Any,
    processor: Any,
    args: PerceptionArgs,
    on_step: Callable[[int, int, float], None] | None,
) -> list[float]:
    import torch

    visual = {id(p) for n, p in model.named_parameters() if ".visual." in f".{n}"}
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if id(p) not in visual], "lr": args.lr},
            {"params": [p for p in params if id(p) in visual], "lr": args.vision_lr},
        ],
        weight_decay=0.0,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, args))
    model.train()
    losses = []
    for step in range(args.steps):
        first = step * args.batch_size
        items = [picture(i, args) for i in range(first, first + args.batch_size)]
        inputs, labels = encode(processor, items)
        loss = model(**inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, args.steps, losses[-1])
    model.eval()
    return losses


def lr_factor(step: int, args: PerceptionArgs) -> float:
    """A linear warmup over the first `warmup_steps`, times a cosine from 1 to 0 over the run."""
    warm = min(1.0, (step + 1) / args.warmup_steps)
    return warm * 0.5 * (1.0 + math.cos(math.pi * step / args.steps))


def caption(model: Any, processor: Any, image: Any) -> str:
    """The model's greedy reply to `PROMPT` about `image` (special tokens dropped)."""
    import torch

    inputs = processor(text=[prompt_text(processor)], images=[image], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    return processor.tokenizer.decode(
        out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )


def held_out_exact(model: Any, processor: Any, args: PerceptionArgs) -> str:
    """How many greedy replies to unseen pictures are exactly right, as "k/n"."""
    right = 0
    for i in range(HELD_OUT, HELD_OUT + args.n_held_out):
        image, text = picture(i, args)
        right += caption(model, processor, image) == text
    return f"{right}/{args.n_held_out}"
