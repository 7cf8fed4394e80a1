"""The operations a synthesized trajectory performs: the one on the cue, and inserted misses.

Correct crop: the union of the cue boxes, normalized, rounded *outward* to 3 decimals (so the
crop still contains the whole cue) and kept below 1.0 — in `compat` mode the executor reads a
box as normalized only if every value is < 1 (docs/method.md §2), so `x2 = 1.0` would crop wrong pixels.

Misses (self-correction, docs/method.md §7) must really miss after the executor's padding:
- `displaced`: a box of the cue's size whose padded crop does not touch the cue at all;
- `too_wide`: a box around the cue covering most of the image, so the crop is no sharper than
  the whole view and the detail stays unreadable;
- `wrong_frames`: as many frames as the key frames, as far from them as the video allows.
Choices are drawn from `random.Random("wrong/<seed id>")`: deterministic per seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from pixelctl.executor.observe import CROP_TOOL, FRAMES_TOOL
from pixelctl.synth.seeds import Seed

MAX_NORM = 0.999  # compat reads a box as normalized only if all values are < 1
WIDE_SIDE = 0.7  # a too-wide box spans at least this fraction of each side


@dataclass(frozen=True)
class Op:
    name: str
    arguments: dict[str, Any] = field(hash=False)
    error: bool = False  # an inserted miss: masked in SFT
    miss: str = ""


def outward(box: tuple[float, ...]) -> list[float]:
    """Round (x1, y1, x2, y2) outward to 3 decimals and clamp to [0, MAX_NORM]."""
    x1, y1, x2, y2 = box
    lo = [max(0.0, math.floor(v * 1000 + 1e-6) / 1000) for v in (x1, y1)]
    hi = [min(MAX_NORM, math.ceil(v * 1000 - 1e-6) / 1000) for v in (x2, y2)]
    return [lo[0], lo[1], hi[0], hi[1]]


def where_words(box: tuple[float, ...] | list[float]) -> str:
    """The box centre in words, on a 3x3 grid ("in the upper left", "in the centre")."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    row = ("upper", "middle", "lower")[min(2, int(cy * 3))]
    col = ("left", "centre", "right")[min(2, int(cx * 3))]
    if row == "middle":
        return "in the centre" if col == "centre" else f"on the {col} side"
    return (
        f"near the {'top' if row == 'upper' else 'bottom'} centre"
        if col == "centre"
        else (f"in the {row} {col}")
    )


def frames_words(frames: list[int]) -> str:
    """1-based frame numbers in words ("frame 4", "frames 4 to 6", "frames 2, 5 and 9")."""
    if len(frames) == 1:
        return f"frame {frames[0]}"
    if frames == list(range(frames[0], frames[-1] + 1)):
        return f"frames {frames[0]} to {frames[-1]}"
    return "frames " + ", ".join(map(str, frames[:-1])) + f" and {frames[-1]}"


def correct_op(seed: Seed) -> Op:
    if seed.is_video:
        return Op(FRAMES_TOOL, {"target_frames": sorted({k + 1 for k in seed.key_frames})})
    return Op(CROP_TOOL, {"bbox_2d": outward(seed.cue_box()), "target_image": 1})


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _displaced(cue: tuple[float, ...], rng: random.Random, pad: float) -> list[float] | None:
    w, h = cue[2] - cue[0], cue[3] - cue[1]
    centres = [(x, y) for x in (0.15, 0.5, 0.85) for y in (0.15, 0.5, 0.85)]
    rng.shuffle(centres)
    for cx, cy in centres:
        x1 = min(max(0.0, cx - w / 2), 1.0 - w)
        y1 = min(max(0.0, cy - h / 2), 1.0 - h)
        box = outward((x1, y1, x1 + w, y1 + h))
        padded = (box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad)
        if not _overlaps(padded, cue):
            return box
    return None


def _too_wide(cue: tuple[float, ...]) -> list[float]:
    cx, cy = (cue[0] + cue[2]) / 2, (cue[1] + cue[3]) / 2
    side_w = min(1.0, max(WIDE_SIDE, 4 * (cue[2] - cue[0])))
    side_h = min(1.0, max(WIDE_SIDE, 4 * (cue[3] - cue[1])))
    x1 = min(max(0.0, cx - side_w / 2), 1.0 - side_w)
    y1 = min(max(0.0, cy - side_h / 2), 1.0 - side_h)
    return outward((x1, y1, x1 + side_w, y1 + side_h))


def _wrong_frames(seed: Seed) -> list[int] | None:
    keys = set(seed.key_frames)
    others = [i for i in range(len(seed.frames)) if i not in keys]
    if not others or not keys:
        return None
    far = sorted(others, key=lambda i: (-min(abs(i - k) for k in keys), i))
    return sorted(i + 1 for i in far[: len(keys)])


def wrong_op(seed: Seed, miss: str, pad: float) -> Op | None:
    """An operation that misses the cue, or None when this seed allows no real miss."""
    if seed.is_video:
        frames = _wrong_frames(seed)
        return Op(FRAMES_TOOL, {"target_frames": frames}, True, "wrong_frames") if frames else None
    cue = seed.cue_box()
    rng = random.Random(f"wrong/{seed.id}")
    box = _displaced(cue, rng, pad) if miss == "displaced" else None
    if box is None:  # no displaced box clears the cue: fall back to a wrong scale
        if (cue[2] - cue[0]) * (cue[3] - cue[1]) > 0.25:
            return None  # the cue is big: a wide crop would show it as well as the right one
        miss, box = "too_wide", _too_wide(cue)
    return Op(CROP_TOOL, {"bbox_2d": box, "target_image": 1}, True, miss)
