"""The start checkpoint as OpenRLHF sees it: the same files, with the train pixel bounds set.

OpenRLHF 0.11.2 never passes min/max pixels to vLLM or to its HF processor, so both read the
checkpoint's processor config. A stock Qwen2.5-VL config allows 16,384 visual tokens per image
(12,845,056 pixels), and vLLM sizes its multimodal budget (profile run, encoder cache) for that,
while the executor never hands it more than the train caps. `<run>/model/` links every file of
the checkpoint except the processor config, which is rewritten with the train preset's overall
pixel range, so vLLM budgets what the run really sends, and the trainer's processor leaves the
executor's images exactly as fitted (they are already inside the range: no second resize).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
)


def pixel_range(bounds: Any) -> tuple[int, int]:
    """The smallest minimum and largest maximum over the train preset's kinds."""
    kinds = ("image", "crop", "frame", "video")
    lo = min(getattr(bounds, f"{k}_min_pixels") for k in kinds)
    hi = max(getattr(bounds, f"{k}_max_pixels") for k in kinds)
    return lo, hi


def _clamp(section: dict, lo: int, hi: int) -> None:
    if "min_pixels" in section or "max_pixels" in section:
        section["min_pixels"], section["max_pixels"] = lo, hi
    if isinstance(section.get("size"), dict):
        section["size"] = {**section["size"], "shortest_edge": lo, "longest_edge": hi}
    elif "min_pixels" not in section:
        section["size"] = {"shortest_edge": lo, "longest_edge": hi}


def rewrite(data: dict, lo: int, hi: int) -> dict:
    """A processor config with its pixel range set (flat or nested per sub-processor)."""
    data = json.loads(json.dumps(data))
    nested = [k for k in ("image_processor", "video_processor") if isinstance(data.get(k), dict)]
    for key in nested:
        _clamp(data[key], lo, hi)
    if not nested:
        _clamp(data, lo, hi)
    return data


def stage_model(src: str | Path, dst: str | Path, bounds: Any) -> Path:
    """Build `dst` as the view of checkpoint `src` (symlinks + rewritten processor config)."""
    src, dst = Path(src).resolve(), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    lo, hi = pixel_range(bounds)
    for item in sorted(src.iterdir()):
        target = dst / item.name
        if target.exists() or target.is_symlink():
            target.unlink() if not target.is_dir() or target.is_symlink() else None
        if item.name in PROCESSOR_FILES:
            data = json.loads(item.read_text(encoding="utf-8"))
            target.write_text(json.dumps(rewrite(data, lo, hi), indent=2) + "\n", encoding="utf-8")
        elif not target.exists():
            os.symlink(item, target)
    (dst / "pixelctl_model_view.json").write_text(
        json.dumps({"source": str(src), "min_pixels": lo, "max_pixels": hi}, indent=2) + "\n"
    )
    return dst
