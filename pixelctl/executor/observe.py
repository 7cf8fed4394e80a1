"""Observation strings (docs/method.md §2) and the error messages the model reads.

The three observation formats are an interface: the released checkpoints were trained on them.
Error messages come in two flavours. `compat` keeps the reference's own wording (HEAD a3a6c3a)
wherever the reference wrote a message on purpose (crop too small, index ranges, frame count,
image-vs-video), so a model sees what the reference would show it. Where the reference leaked a
Python exception (`'bbox_2d'`, `list indices must be integers`), both modes use the clear
messages below. `strict` uses the clear messages everywhere. Every message says what was wrong
and what is valid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from pixelctl.models.qwen import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

# The two tools' names, as the model calls them: the prompt's schemas, the executor's dispatch,
# synthesis and the viewer all read them from here.
CROP_TOOL = "crop_image_normalized"
FRAMES_TOOL = "select_frames"

CROP_TEXT = "\nHere is the cropped image (Image Size: {w}x{h}):"
FRAMES_TEXT = "\nHere are the selected frames (Frame Size: {w}x{h}, Numbered {a} to {b}):"
ERROR_TEXT = "\nExecution error:\n{message}\n"

CALL_FORM = (
    f'{TOOL_CALL_OPEN}\n{{"name": "{CROP_TOOL}", "arguments": '
    f'{{"bbox_2d": [x1, y1, x2, y2], "target_image": 1}}}}\n{TOOL_CALL_CLOSE}'
)


class ToolError(Exception):
    """A failure the model caused and can fix; its message becomes an Execution error."""


@dataclass
class Observation:
    """What one tool call returns: the user-turn text, its images, and why it failed if it did."""

    text: str
    images: list[Image.Image] = field(default_factory=list)
    ok: bool = True
    error: str | None = None
    name: str | None = None
    arguments: dict[str, Any] | None = None
    stop: bool = False  # the rollout must end now (a limit was hit); the text is informative only
    crop_box: tuple[int, int, int, int] | None = None  # pixels of the target image, for crops
    target: int | None = None  # the 1-based target_image index a crop resolved to


def crop_text(w: int, h: int) -> str:
    return CROP_TEXT.format(w=w, h=h)


def frames_text(w: int, h: int, first: int, last: int) -> str:
    return FRAMES_TEXT.format(w=w, h=h, a=first, b=last)


def error_text(message: str) -> str:
    return ERROR_TEXT.format(message=message)


def show(value: Any, limit: int = 80) -> str:
    """A short JSON rendering of what the model sent, cut so huge inputs stay readable."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- messages the reference wrote on purpose (compat keeps them verbatim) -------------------------
# The wording of the reference at HEAD a3a6c3a (`execute_tool` in experience_maker.py, last changed
# in 9ddb524). Its own checks prefix "Execution Error: " and some echo the argument as Python
# prints it (`str(value)`), so `{got}` below is filled with `str(...)` of the parsed JSON value.
# The texts of the older commit 47dbea9 are listed in docs/executor.md.
_REF = "Execution Error: "
_REF_TARGET = _REF + "Incorrect `target_image` argument in `crop_image_normalized` operation. "
REF_CROP_TOO_SMALL = "Cropped image is too small: {w}x{h}"  # the crop tool's own assert, no prefix
REF_TARGET_IMAGE = _REF_TARGET + "You can only pick an image within [1,{n}]"
REF_TARGET_VIDEO_FRAME = (
    _REF_TARGET + "You can only pick an image **from** the video within [1,{n}], "
    "but the current argument `target_image={got}`."
)
REF_TARGET_AFTER_VIDEO = (
    _REF_TARGET + "You can only pick an image within range [2,{n}], "
    "but the current argument `target_image={got}`."
)
REF_TOO_MANY_FRAMES = (
    _REF + "You have selected {n} frames in total. Think again which frames you need to check "
    "in details (no more than {cap} frames)"
)
REF_FRAMES_RANGE = (
    _REF + "There are {n} frames numbered in range [1,{n}]. "
    "Your selection `target_frames={got}` is out of range."
)
REF_FRAMES_ON_IMAGE = (
    _REF + "You attempted to `select_frames` from **image** not **video**. You should use "
    "`crop_image_normalized` instead for inspecting **image**."
)


# --- clear messages -------------------------------------------------------------------------------
def msg_crop_too_small(w: int, h: int, side: int, pad: float) -> str:
    return (
        f"The crop is {w}x{h} px after adding {pad:g} padding and clipping to the image; both "
        f"sides must be larger than {side} px. Choose a larger `bbox_2d`."
    )


def image_scope(n: int) -> str:
    return "1 is the original image" + (
        ", higher numbers the images returned since" if n > 1 else ""
    )


def video_scope(n_frames: int, n: int) -> str:
    returned = f", {n_frames + 1} to {n} the images returned so far" if n > n_frames else ""
    return f"1 to {n_frames} are the video frames{returned}"


def msg_target_image(got: Any, n: int, scope: str, first: int = 1) -> str:
    return f"`target_image` must be an integer from {first} to {n} ({scope}); got {show(got)}."


def msg_too_many_frames(n: int, cap: int) -> str:
    return f"You selected {n} frames; select at most {cap} frames per call."


def msg_frames_range(got: Any, n: int) -> str:
    return (
        f"`target_frames` must be a non-empty list of integers from 1 to {n} "
        f"(the video has {n} frames); got {show(got)}."
    )


def msg_frames_on_image(n_images: int) -> str:
    return (
        f"`{FRAMES_TOOL}` works only on a video, and this input is an image. To look closer, call "
        f"`{CROP_TOOL}` with `target_image` from 1 to {n_images}."
    )


def msg_bbox_form(got: Any) -> str:
    return (
        "`bbox_2d` must be a list of four numbers [x1, y1, x2, y2]: the box's left, top, right and "
        f"bottom as fractions of the image width and height, each in [0, 1]; got {show(got)}."
    )


def msg_bbox_range(got: Any, w: int, h: int) -> str:
    return (
        f"`bbox_2d` values must be fractions in [0, 1] of the target image's size; got {show(got)}. "
        f"For pixel coordinates divide x by {w} and y by {h}."
    )


def msg_bbox_order(got: Any) -> str:
    return (
        f"`bbox_2d` must be [x1, y1, x2, y2] with x1 < x2 and y1 < y2 (left, top, right, bottom); "
        f"got {show(got)}."
    )


def msg_unknown_tool(name: Any) -> str:
    return (
        f"Unknown tool {show(name)}. The tools are `{CROP_TOOL}` (for images) and "
        f"`{FRAMES_TOOL}` (for videos)."
    )


def msg_missing_args(tool: str, missing: list[str], needed: list[str]) -> str:
    return (
        f"`{tool}` needs the argument(s) {', '.join(f'`{k}`' for k in needed)}; missing "
        f"{', '.join(f'`{k}`' for k in missing)}."
    )


def msg_extra_args(tool: str, extra: list[str], allowed: list[str]) -> str:
    return (
        f"`{tool}` takes only {', '.join(f'`{k}`' for k in allowed)}; remove "
        f"{', '.join(show(k, 40) for k in extra)}."
    )


def msg_operation_limit(cap: int) -> str:
    return (
        f"You have used the maximum of {cap} visual operations. Answer with the information you "
        "already have."
    )


def msg_image_limit(have: int, adding: int, cap: int) -> str:
    return (
        f"This call would bring the conversation to {have + adding} images; at most {cap} are "
        "allowed. Answer with the images you already have."
    )


def msg_token_limit(used: int, cap: int) -> str:
    return f"The conversation has {used} tokens, over the budget of {cap}. Answer now."
