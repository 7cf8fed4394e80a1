"""The pixel-space executor: parse a tool call, run it on the rollout's images, observe.

One implementation used by synth, sft, rl (both engines) and eval. Pure apart from Pillow:
no torch, transformers or vllm. See docs/executor.md for box modes, numbering and bounds.
"""

from pixelctl.executor.geometry import smart_resize, visual_tokens
from pixelctl.executor.images import ImageCache, ImageLoadError, image_cache
from pixelctl.executor.observe import CROP_TOOL, FRAMES_TOOL, Observation, ToolError
from pixelctl.executor.parse import ParsedTurn, ToolCall, parse_tool_call
from pixelctl.executor.session import Counters, Session, thread_pool
from pixelctl.executor.settings import (
    EVAL_BOUNDS,
    TRAIN_BOUNDS,
    ExecutorSettings,
    PixelBounds,
)

__all__ = [
    "CROP_TOOL",
    "EVAL_BOUNDS",
    "FRAMES_TOOL",
    "TRAIN_BOUNDS",
    "Counters",
    "ExecutorSettings",
    "ImageCache",
    "ImageLoadError",
    "Observation",
    "ParsedTurn",
    "PixelBounds",
    "Session",
    "ToolCall",
    "ToolError",
    "image_cache",
    "parse_tool_call",
    "smart_resize",
    "thread_pool",
    "visual_tokens",
]
