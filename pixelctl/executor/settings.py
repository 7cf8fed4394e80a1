"""Executor settings: pixel bounds and limits, one frozen object that travels to every worker.

The numbers are the reference run's (docs/method.md §2). They live in one frozen dataclass so a rollout worker
receives them by value (pickled with the session) instead of reading environment variables, which
is how the reference silently lost its eval pixel limits on Ray workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pixelctl.models.qwen import PIXEL_UNIT

BoxMode = Literal["compat", "strict"]
Preset = Literal["train", "eval"]


@dataclass(frozen=True)
class PixelBounds:
    """Pixel-count bounds for `smart_resize` at each place an image enters the conversation."""

    image_min_pixels: int
    image_max_pixels: int
    crop_min_pixels: int
    crop_max_pixels: int
    frame_min_pixels: int
    frame_max_pixels: int
    # Input video frames (the reference's `process_vision_info` with max 512·28² in both stages).
    video_min_pixels: int = 4 * PIXEL_UNIT
    video_max_pixels: int = 512 * PIXEL_UNIT

    def __post_init__(self) -> None:
        for lo, hi in (
            ("image_min_pixels", "image_max_pixels"),
            ("crop_min_pixels", "crop_max_pixels"),
            ("frame_min_pixels", "frame_max_pixels"),
            ("video_min_pixels", "video_max_pixels"),
        ):
            low, high = getattr(self, lo), getattr(self, hi)
            if not 0 < low <= high:
                raise ValueError(f"PixelBounds: need 0 < {lo} <= {hi}, got {low} and {high}")


# Training rollouts (reference `_generate_vllm`, is_eval=False): originals 4..2000 tokens,
# crops 4..1000, selected frames re-resized to at most 400 tokens.
TRAIN_BOUNDS = PixelBounds(
    image_min_pixels=4 * PIXEL_UNIT,
    image_max_pixels=2000 * PIXEL_UNIT,
    crop_min_pixels=4 * PIXEL_UNIT,
    crop_max_pixels=1000 * PIXEL_UNIT,
    frame_min_pixels=4 * PIXEL_UNIT,
    frame_max_pixels=400 * PIXEL_UNIT,
)

# Evaluation: originals 256..8000 tokens, crops 256..5120; selected frames are returned as the
# input frames were resized (4..512 tokens), which re-resizing with the same bounds reproduces.
EVAL_BOUNDS = PixelBounds(
    image_min_pixels=256 * PIXEL_UNIT,
    image_max_pixels=8000 * PIXEL_UNIT,
    crop_min_pixels=256 * PIXEL_UNIT,
    crop_max_pixels=5120 * PIXEL_UNIT,
    frame_min_pixels=4 * PIXEL_UNIT,
    frame_max_pixels=512 * PIXEL_UNIT,
)

BOUNDS_PRESETS: dict[str, PixelBounds] = {"train": TRAIN_BOUNDS, "eval": EVAL_BOUNDS}


@dataclass(frozen=True)
class ExecutorSettings:
    """Everything that decides what a tool call returns; pass it whole to every worker."""

    box_mode: BoxMode = "compat"
    bounds: PixelBounds = field(default=TRAIN_BOUNDS)
    pad: float = 0.1
    min_crop_side: int = 28  # a crop must be *larger* than this on both sides (reference)
    max_operations: int = 4  # the 5th call ends the rollout unexecuted
    max_images: int = 16  # inputs (a video counts as one) plus returned images
    max_frames: int = 8  # per select_frames call
    max_input_pixels: int = 64 * 1024 * 1024  # refuse bigger inputs before decoding (bombs)
    data_root: Path | None = None  # when set, image paths must resolve inside it
    max_tokens: int = 12 * 1024 - 200  # reference trajectory budget, checked before a call
    max_call_chars: int = 65536  # longer tool-call JSON is refused unparsed
    fast_decode: bool = True  # JPEG draft decoding when the input is downscaled >= 2x

    def __post_init__(self) -> None:
        if self.box_mode not in ("compat", "strict"):
            raise ValueError(f"box_mode must be 'compat' or 'strict', got {self.box_mode!r}")
        if not 0 <= self.pad < 0.5:
            raise ValueError(f"pad must be in [0, 0.5), got {self.pad}")
        for name in ("min_crop_side", "max_operations", "max_images", "max_frames"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_input_pixels <= 0:
            raise ValueError("max_input_pixels must be > 0")
        if self.data_root is not None and not isinstance(self.data_root, Path):
            object.__setattr__(self, "data_root", Path(self.data_root))

    @classmethod
    def preset(cls, name: Preset, **overrides: object) -> ExecutorSettings:
        """Settings for the `train` or `eval` pixel bounds, with optional field overrides."""
        if name not in BOUNDS_PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose 'train' or 'eval'")
        return replace(cls(bounds=BOUNDS_PRESETS[name]), **overrides)  # type: ignore[arg-type]
