"""Pure geometry: `smart_resize` and the crop box, with no image library involved.

`smart_resize` is qwen-vl-utils' function rewritten here because importing qwen_vl_utils imports
torch; `tests/test_executor_smart_resize.py` checks the two agree. The crop box follows the
reference arithmetic operation for operation (same float expressions, same clipping, Pillow's
rounding), so `compat` boxes land on exactly the reference's pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pixelctl.executor import observe as ob
from pixelctl.executor.observe import ToolError
from pixelctl.models.qwen import FACTOR

MAX_RATIO = 200  # qwen-vl-utils refuses more extreme aspect ratios


def round_by_factor(number: float, factor: int) -> int:
    return round(number / factor) * factor


def ceil_by_factor(number: float, factor: int) -> int:
    return math.ceil(number / factor) * factor


def floor_by_factor(number: float, factor: int) -> int:
    return math.floor(number / factor) * factor


def smart_resize(
    height: int,
    width: int,
    factor: int = FACTOR,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> tuple[int, int]:
    """(height, width) divisible by `factor`, pixel count in bounds, aspect ratio kept (qwen-vl-utils)."""
    max_pixels = max_pixels if max_pixels is not None else 16384 * factor**2
    min_pixels = min_pixels if min_pixels is not None else 4 * factor**2
    if max_pixels < min_pixels:
        raise ValueError("The max_pixels of image must be greater than or equal to min_pixels.")
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(
            f"absolute aspect ratio must be smaller than {MAX_RATIO}, "
            f"got {max(height, width) / min(height, width)}"
        )
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = floor_by_factor(height / beta, factor)
        w_bar = floor_by_factor(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


def visual_tokens(
    height: int, width: int, min_pixels: int | None = None, max_pixels: int | None = None
) -> int:
    """Merged visual tokens Qwen2.5-VL spends on one image (or video frame) of this size: one
    per `FACTOR`×`FACTOR` px of its `smart_resize`d size. Raises ValueError as smart_resize."""
    h, w = smart_resize(height, width, FACTOR, min_pixels, max_pixels)
    return (h // FACTOR) * (w // FACTOR)


def _number(value: Any) -> float | None:
    """The value as a finite float, or None for bools, non-numbers, NaN, inf and overflowing ints."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def parse_bbox(value: Any) -> tuple[float, float, float, float]:
    """Four finite numbers or a ToolError saying what the valid form is."""
    if not isinstance(value, list) or len(value) != 4:
        raise ToolError(ob.msg_bbox_form(value))
    numbers = [_number(v) for v in value]
    if any(n is None for n in numbers):
        raise ToolError(ob.msg_bbox_form(value))
    x1, y1, x2, y2 = numbers
    return x1, y1, x2, y2  # type: ignore[return-value]


def _clip(v: float) -> float:
    return min(max(0, v), 1)


def normalized_box(
    raw: Sequence[Any], box: Sequence[float], width: int, height: int, mode: str, pad: float
) -> tuple[float, float, float, float]:
    """The padded, clipped box in [0,1]; `raw` is what the model wrote (for messages)."""
    x1, y1, x2, y2 = box
    if mode == "strict":
        if not all(0.0 <= v <= 1.0 for v in box):
            raise ToolError(ob.msg_bbox_range(list(raw), width, height))
        if not (x1 < x2 and y1 < y2):
            raise ToolError(ob.msg_bbox_order(list(raw)))
        padded = (x1 - pad, y1 - pad, x2 + pad, y2 + pad)
    elif x1 < 1 and y1 < 1 and x2 < 1 and y2 < 1:
        # Reference rule: normalized only if all four values are below 1, else absolute pixels.
        padded = (x1 - pad, y1 - pad, x2 + pad, y2 + pad)
    else:
        padded = (x1 / width - pad, y1 / height - pad, x2 / width + pad, y2 / height + pad)
    nx1, ny1, nx2, ny2 = (_clip(v) for v in padded)
    return nx1, ny1, nx2, ny2


def pixel_box(
    raw: Sequence[Any], norm: Sequence[float], width: int, height: int
) -> tuple[int, int, int, int]:
    """The integer box Pillow crops for the float box (it rounds each coordinate half to even)."""
    nx1, ny1, nx2, ny2 = norm
    fbox = (nx1 * width, ny1 * height, nx2 * width, ny2 * height)
    if fbox[2] < fbox[0] or fbox[3] < fbox[1]:
        raise ToolError(ob.msg_bbox_order(list(raw)))
    left, upper, right, lower = (round(v) for v in fbox)
    return left, upper, right, lower


def crop_box(
    raw: Any, width: int, height: int, *, mode: str, pad: float, min_side: int
) -> tuple[int, int, int, int]:
    """The pixel box a `crop_image_normalized` call cuts from a `width`x`height` image."""
    box = parse_bbox(raw)
    norm = normalized_box(raw, box, width, height, mode, pad)
    left, upper, right, lower = pixel_box(raw, norm, width, height)
    w, h = right - left, lower - upper
    if not (w > min_side and h > min_side):
        if mode == "compat":
            raise ToolError(ob.REF_CROP_TOO_SMALL.format(w=w, h=h))
        raise ToolError(ob.msg_crop_too_small(w, h, min_side, pad))
    return left, upper, right, lower
