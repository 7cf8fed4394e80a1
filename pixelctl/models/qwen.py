"""Qwen2.5-VL's fixed interface: special tokens, chat markup, the 28-px vision unit, the vision
tower's parameter names, and the Qwen2.5-VL-Instruct chat template. The one home for these
strings and numbers: the prompt, the agent, the loss masks, the engines and the tiny model all
read them from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The vision tower works in 28×28 px units (patch 14, spatial merge 2): one merged token each.
FACTOR = 28
PIXEL_UNIT = FACTOR * FACTOR

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
# Qwen2.5-VL's special-token strings, in Qwen's order.
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)
# The tokens that frame or stand for pixels: never a training target.
VISION_TOKENS = (VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)

# The tool-call markers: added to the vocabulary but not special, so they survive
# `decode(skip_special_tokens=True)`, as in Qwen's own tokenizer.
TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
TOOL_TOKENS = (TOOL_CALL_OPEN, TOOL_CALL_CLOSE)

# One image in a rendered user turn, as the chat template writes it.
IMAGE_MARKUP = VISION_START + IMAGE_PAD + VISION_END


def turn_header(role: str) -> str:
    """The text that opens a `role` turn in the rendered chat: `<|im_start|>role\\n`."""
    return f"{IM_START}{role}\n"


ASSETS = Path(__file__).parent / "assets"
CHAT_TEMPLATE_PATH = ASSETS / "qwen2_5_vl_chat_template.jinja"


def chat_template() -> str:
    """The Qwen2.5-VL-Instruct chat template (Jinja source)."""
    return CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")


def is_vision(name: str) -> bool:
    """A parameter of the vision tower (ViT blocks and merger: `visual.*`), by its name."""
    return ".visual." in f".{name}"


def freeze_vision(model: Any) -> int:
    """Freeze the vision tower (SFT and the local RL engine); returns the frozen count."""
    frozen = 0
    for name, p in model.named_parameters():
        if is_vision(name):
            p.requires_grad_(False)
            frozen += p.numel()
    if frozen == 0:
        raise ValueError("model.freeze_vision: no `visual.*` parameters found in this model")
    return frozen
