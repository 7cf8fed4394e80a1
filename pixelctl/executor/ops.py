"""The two pixel-space operations on in-memory images, and the checks on their arguments."""

from __future__ import annotations

from typing import Any

from PIL import Image

from pixelctl.executor import observe as ob
from pixelctl.executor.geometry import crop_box
from pixelctl.executor.images import fit
from pixelctl.executor.numbering import is_index
from pixelctl.executor.observe import ToolError
from pixelctl.executor.settings import ExecutorSettings

ARGUMENTS = {ob.CROP_TOOL: ["bbox_2d", "target_image"], ob.FRAMES_TOOL: ["target_frames"]}


def check_name(name: Any) -> str:
    """The tool name, if the call names one of the two tools."""
    if not isinstance(name, str) or name not in ARGUMENTS:
        raise ToolError(ob.msg_unknown_tool(name))
    return name


def check_present(name: str, arguments: dict[str, Any], keys: list[str]) -> None:
    """`keys` are all in `arguments` (the message lists every argument the tool needs)."""
    missing = [k for k in keys if k not in arguments]
    if missing:
        raise ToolError(ob.msg_missing_args(name, missing, ARGUMENTS[name]))


def check_arguments(name: Any, arguments: dict[str, Any], mode: str) -> str:
    """The tool name if the call names a tool and carries its arguments (strict: nothing else)."""
    name = check_name(name)
    needed = ARGUMENTS[name]
    check_present(name, arguments, needed)
    extra = [k for k in arguments if k not in needed]
    if extra and mode == "strict":  # the reference ignores unknown arguments
        raise ToolError(ob.msg_extra_args(name, extra, needed))
    return name


def crop(
    image: Image.Image, bbox: Any, settings: ExecutorSettings
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Cut the padded box out of `image` and resize it to the crop bounds."""
    box = crop_box(
        bbox,
        image.width,
        image.height,
        mode=settings.box_mode,
        pad=settings.pad,
        min_side=settings.min_crop_side,
    )
    region = image.crop(box)
    bounds = settings.bounds
    try:
        return fit(region, bounds.crop_min_pixels, bounds.crop_max_pixels), box
    except ValueError as exc:  # aspect ratio beyond 200:1, or bounds it cannot meet
        w, h = region.size
        raise ToolError(
            f"The crop is {w}x{h} px and cannot be shown ({exc}). Choose a box closer to a square."
        ) from exc


def frame_indices(value: Any, n_frames: int, settings: ExecutorSettings) -> list[int]:
    """Validated 1-based frame indices for `select_frames`.

    compat follows the reference's order: the count first (whatever the items), then its range
    check on the largest number, echoing the list as Python prints it; what the reference would
    crash on (empty lists, floats, strings) or wrap around (0, negatives, booleans) is refused
    with the clear message or, for 0 and negatives, the reference's range message.
    """
    compat = settings.box_mode == "compat"
    if not isinstance(value, list) or not value:
        raise ToolError(ob.msg_frames_range(value, n_frames))
    if len(value) > settings.max_frames:
        if compat:
            raise ToolError(ob.REF_TOO_MANY_FRAMES.format(n=len(value), cap=settings.max_frames))
        raise ToolError(ob.msg_too_many_frames(len(value), settings.max_frames))
    numbers = all(isinstance(v, (int, float)) for v in value)  # bools too: max() takes them
    if compat and numbers and max(value) > n_frames:
        raise ToolError(ob.REF_FRAMES_RANGE.format(n=n_frames, got=value))
    if not all(is_index(v) for v in value):
        raise ToolError(ob.msg_frames_range(value, n_frames))
    if not all(1 <= v <= n_frames for v in value):
        if compat:
            raise ToolError(ob.REF_FRAMES_RANGE.format(n=n_frames, got=value))
        raise ToolError(ob.msg_frames_range(value, n_frames))
    return list(value)


def select(
    frames: list[Image.Image], indices: list[int], settings: ExecutorSettings
) -> list[Image.Image]:
    """The chosen frames, resized to the frame bounds (a no-op when they already fit)."""
    bounds = settings.bounds
    try:
        return [
            fit(frames[i - 1], bounds.frame_min_pixels, bounds.frame_max_pixels) for i in indices
        ]
    except ValueError as exc:  # only with frame bounds narrower than the video bounds
        raise ToolError(f"The selected frames cannot be shown ({exc}).") from exc
