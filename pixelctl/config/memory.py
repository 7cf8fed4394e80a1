"""Host memory the OpenRLHF run holds in its one `PPOTrainer` process, from the bounds and counts.

Every rollout carries its images as float32 `pixel_values` (Qwen2.5-VL's processor output:
one row of 3 × 2 × 14 × 14 = 1,176 floats per 14-pixel patch, four patches per merged visual
token, so 18,816 bytes per visual token). A round's experiences all sit in the trainer process
before they go to the actors, and the SSR buffer keeps its samples across rounds. Measured on
the tiny processor: 37.6 MB per input image at the 2,000-token train cap, 18.8 MB per crop at
the 1,000-token crop cap.

Two numbers per quantity: the *floor* (every sample carries one prompt image, or a video's
16 frames if that is cheaper, and makes no call) and the *bound* (every sample makes `executor.max_operations` calls, each returning its
largest observation, within `executor.max_images`). The truth lies between; the floor alone
already decides whether a round fits. Pure arithmetic: `validate` imports this without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelctl.models.qwen import PIXEL_UNIT

BYTES_PER_VISUAL_TOKEN = 4 * 3 * 2 * 14 * 14 * 4  # 2×2 patches × 1,176 float32 values
GB = 1e9
IMAGES_PER_PROMPT = 1  # the paper's data: one image per image prompt
VIDEO_FRAMES = 16


@dataclass(frozen=True)
class MemoryEstimate:
    samples_per_round: int
    sample_floor: float  # bytes
    sample_bound: float
    buffer_samples: int  # what the SSR buffer may hold (capacity, capped by memory)
    limit_gb: float | None  # launch.rl.host_memory_gb
    buffer_cap_gb: float | None = None  # rl.replay.max_memory_gb (the hook enforces it)

    @property
    def round_floor(self) -> float:
        return self.samples_per_round * self.sample_floor

    @property
    def round_bound(self) -> float:
        return self.samples_per_round * self.sample_bound

    @property
    def buffer_floor(self) -> float:
        return self.buffer_samples * self.sample_floor

    @property
    def buffer_bound(self) -> float:
        bound = self.buffer_samples * self.sample_bound
        return min(bound, self.buffer_cap_gb * GB) if self.buffer_cap_gb else bound

    @property
    def total_floor(self) -> float:
        return self.round_floor + self.buffer_floor

    def warning(self) -> str | None:
        if self.limit_gb is None or self.total_floor <= self.limit_gb * GB:
            return None
        return (
            f"host memory: a round and the SSR buffer need at least {self.total_floor / GB:,.0f} GB "
            f"of pixel tensors in the PPOTrainer process, over launch.rl.host_memory_gb = "
            f"{self.limit_gb:g}; lower rl.rollout.prompts_per_round, the train pixel bounds, or "
            "cap the buffer with rl.replay.max_memory_gb"
        )


def _tokens(pixels: int) -> int:
    return pixels // PIXEL_UNIT


def sample_bytes(recipe) -> tuple[float, float]:
    """(floor, bound) bytes of pixel tensors one trajectory carries. The recipe does not say
    whether the data holds images or videos: the floor is the cheaper case (one image, or 16
    frames, no call), the bound the dearer one with every operation used."""
    e, b = recipe.executor, recipe.executor.bounds.train
    ops = e.max_operations
    image_floor = IMAGES_PER_PROMPT * _tokens(b.image_max_pixels)
    crops = min(ops, max(e.max_images - IMAGES_PER_PROMPT, 0))
    image_bound = image_floor + crops * _tokens(b.crop_max_pixels)
    video_floor = VIDEO_FRAMES * _tokens(b.video_max_pixels)
    frames = min(ops * e.max_frames, e.max_images)
    video_bound = video_floor + frames * _tokens(b.frame_max_pixels)
    floor = min(image_floor, video_floor) * BYTES_PER_VISUAL_TOKEN
    bound = max(image_bound, video_bound) * BYTES_PER_VISUAL_TOKEN
    return float(floor), float(bound)


def buffer_samples(recipe, sample_floor: float) -> int:
    """The SSR buffer's effective size: `rl.replay.capacity`, capped by `max_memory_gb` (the
    hook enforces the byte cap on the real tensors; this is its count at the floor)."""
    replay = recipe.rl.replay
    if not replay.ssr:
        return 0
    cap = replay.capacity
    if replay.max_memory_gb is not None and sample_floor > 0:
        cap = min(cap, int(replay.max_memory_gb * GB // sample_floor))
    return cap


def estimate(recipe) -> MemoryEstimate:
    floor, bound = sample_bytes(recipe)
    ro = recipe.rl.rollout
    return MemoryEstimate(
        samples_per_round=ro.prompts_per_round * ro.n_samples,
        sample_floor=floor,
        sample_bound=bound,
        buffer_samples=buffer_samples(recipe, floor),
        limit_gb=recipe.launch.rl.host_memory_gb,
        buffer_cap_gb=recipe.rl.replay.max_memory_gb if recipe.rl.replay.ssr else None,
    )


def _gb(x: float) -> str:
    x /= GB
    return f"{x:,.0f}" if x >= 10 else f"{x:.2f}"


def rows(recipe) -> list[tuple[str, str, str]]:
    """(quantity, value, how) rows for `validate --stage rl` and the dry-run plan."""
    m = estimate(recipe)
    per = f"{m.sample_floor / 1e6:,.1f}–{m.sample_bound / 1e6:,.1f} MB per sample"
    return [
        (
            "host memory per round",
            f"{_gb(m.round_floor)}–{_gb(m.round_bound)} GB",
            f"{m.samples_per_round} samples × {per} (float32 pixel_values, PPOTrainer process)",
        ),
        (
            "host memory, SSR buffer",
            f"{_gb(m.buffer_floor)}–{_gb(m.buffer_bound)} GB",
            f"{m.buffer_samples} samples (rl.replay.capacity"
            + (", capped by rl.replay.max_memory_gb" if recipe.rl.replay.max_memory_gb else "")
            + f") × {per}",
        ),
    ]
