"""Which image a `target_image` names, and how new frames are numbered: the one place for both.

Images, both modes: `target_image` counts the inputs, then every returned image, 1-based.

Video, `compat` (the reference at HEAD a3a6c3a, `execute_tool`): the reference keeps one list,
`[video, returned_1, returned_2, ...]`, with the whole video as item 0. Before any image was
returned, `target_image` picks a video frame 1..F. Afterwards it indexes that list, so 1 (the
video) is an error and `k` is the (k-1)-th returned image; the valid range is 2..R+1. New frames
are announced as `Numbered R+1 to R+m` (the list's length before the new ones), so the number a
frame is announced with is one less than the `target_image` that crops it. The older commit
47dbea9 indexed the returned images only (1..R); docs/executor.md compares the two.

Video, `strict`: one numbering for the whole conversation: frames 1..F, returned images F+1 on;
new frames are announced as `Numbered F+R+1 to F+R+m`, which is what `target_image` uses.

Where the reference checks a range itself it answers with its own message (`compat` keeps it,
with the argument echoed as Python prints it); where it would crash (a float index, a string,
past the end of the list after a return) or silently wrap (0 and negative indices, booleans
read as 0/1), both modes refuse with a clear message (docs/executor.md, deviations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image

from pixelctl.executor import observe as ob
from pixelctl.executor.observe import ToolError


def is_index(value: Any) -> bool:
    """A JSON integer (bools are ints in Python but never an index)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A JSON number (int or float, not a bool): what the reference's range checks compare."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _beyond(value: Any, n: int) -> bool:
    """The reference's `target - 1 >= n` (its assert), for numbers only."""
    return is_number(value) and value - 1 >= n


def image_target(
    target: Any,
    n_inputs: int,
    input_image: Callable[[int], Image.Image],
    returned: list[Image.Image],
    mode: str,
) -> Image.Image:
    """The image `target_image` names in an image conversation (inputs decoded on demand)."""
    n = n_inputs + len(returned)
    if not (is_index(target) and 1 <= target <= n):
        # compat: the reference's assert fires for numbers past the end; 0 and negatives it would
        # wrap around (refused here with the same message); anything else would crash it.
        ref = mode == "compat" and (_beyond(target, n) or (is_index(target) and target < 1))
        clear = ob.msg_target_image(target, n, ob.image_scope(n))
        raise ToolError(ob.REF_TARGET_IMAGE.format(n=n) if ref else clear)
    return input_image(target) if target <= n_inputs else returned[target - n_inputs - 1]


def video_target(
    target: Any, frames: list[Image.Image], returned: list[Image.Image], mode: str
) -> Image.Image:
    """The image `target_image` names in a video conversation."""
    if mode == "compat":
        return _compat_video_target(target, frames, returned)
    pool = frames + returned
    if is_index(target) and 1 <= target <= len(pool):
        return pool[target - 1]
    raise ToolError(ob.msg_target_image(target, len(pool), ob.video_scope(len(frames), len(pool))))


def _compat_video_target(
    target: Any, frames: list[Image.Image], returned: list[Image.Image]
) -> Image.Image:
    if not returned:
        if is_index(target) and 1 <= target <= len(frames):
            return frames[target - 1]
        if _beyond(target, len(frames)) or (is_index(target) and target < 1):
            raise ToolError(ob.REF_TARGET_VIDEO_FRAME.format(n=len(frames), got=target))
        raise ToolError(ob.msg_target_image(target, len(frames), "the video frames"))
    n = 1 + len(returned)  # the reference's list: the video, then each returned image
    if is_number(target) and target - 1 < 1:
        raise ToolError(ob.REF_TARGET_AFTER_VIDEO.format(n=n, got=target))
    if is_index(target) and target <= n:
        return returned[target - 2]
    # past the end the reference crashes (IndexError); floats crash it too (TypeError)
    scope = "1 is the video; 2 on are the images returned so far"
    raise ToolError(ob.msg_target_image(target, n, scope, first=2))


def first_frame_number(mode: str, n_frames: int, n_returned: int) -> int:
    """The number announced for the first of newly selected frames."""
    return 1 + n_returned if mode == "compat" else n_frames + n_returned + 1
