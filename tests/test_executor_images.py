"""Decoding and caching: exact reference pixels, the draft-mode tolerance, one decode per group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pixelctl.executor import ExecutorSettings, Session, ToolCall, images
from pixelctl.executor.images import ImageCache, decode_fitted, prepare
from pixelctl.models.qwen import PIXEL_UNIT

# Draft-mode tolerance (docs/executor.md): per-channel mean |difference| <= 2 levels, PSNR >= 35 dB.
MEAN_TOL, PSNR_TOL = 2.0, 35.0


def photo(path: Path, w: int, h: int, seed: int = 0) -> Path:
    """A JPEG with gradients, shapes and text: photo-like enough for codec behaviour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w * 200 + 30, y / h * 180 + 40, (x + y) / (w + h) * 150 + 60], -1)
    image = Image.fromarray(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0, s = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(8, 80))
        draw.rectangle(
            [x0, y0, x0 + s, y0 + s // 2], fill=tuple(int(v) for v in rng.integers(0, 255, 3))
        )
        draw.text((x0, y0), "TEXT 42", fill=(0, 0, 0))
    image.save(path, quality=90)
    return path


def reference_fit(path: Path, lo: int, hi: int) -> Image.Image:
    """What qwen-vl-utils' fetch_image does: open, convert to RGB, smart_resize, bicubic."""
    from pixelctl.executor.geometry import smart_resize

    image = Image.open(path).convert("RGB")
    h, w = smart_resize(image.height, image.width, 28, lo, hi)
    return image.resize((w, h))


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = float((diff**2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def test_exact_decode_equals_the_reference_pipeline(tmp_path):
    path = photo(tmp_path / "a.jpg", 800, 600)
    exact = decode_fitted(path, 4 * PIXEL_UNIT, 100 * PIXEL_UNIT, 10**8, fast=False)
    assert (
        exact.size == (308, 224)
        and exact.tobytes() == reference_fit(path, 4 * PIXEL_UNIT, 100 * PIXEL_UNIT).tobytes()
    )


def test_no_draft_when_the_shrink_is_under_2x(tmp_path):
    path = photo(tmp_path / "a.jpg", 800, 600)
    fast = decode_fitted(path, 4 * PIXEL_UNIT, 400 * PIXEL_UNIT, 10**8, fast=True)
    assert fast.tobytes() == reference_fit(path, 4 * PIXEL_UNIT, 400 * PIXEL_UNIT).tobytes()


def test_draft_decode_is_within_the_documented_tolerance(tmp_path):
    path = photo(tmp_path / "a.jpg", 1600, 1200)
    exact = decode_fitted(path, 4 * PIXEL_UNIT, 100 * PIXEL_UNIT, 10**8, fast=False)
    fast = decode_fitted(path, 4 * PIXEL_UNIT, 100 * PIXEL_UNIT, 10**8, fast=True)
    assert fast.size == exact.size == (308, 224)  # geometry never depends on the decode path
    mean = np.abs(np.asarray(fast, dtype=float) - np.asarray(exact, dtype=float)).mean()
    assert 0 < mean <= MEAN_TOL and psnr(fast, exact) >= PSNR_TOL


def test_png_and_modes_are_decoded_exactly(tmp_path):
    for mode in ("L", "P", "RGBA", "CMYK"):
        path = tmp_path / f"a_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
        Image.open(photo(tmp_path / "src.jpg", 300, 200)).convert(mode).save(path)
        got = decode_fitted(path, 4 * PIXEL_UNIT, 400 * PIXEL_UNIT, 10**8, fast=True)
        assert got.mode == "RGB" and got.size == (308, 196)


def test_cache_decodes_a_file_once_per_group(tmp_path, monkeypatch):
    path = photo(tmp_path / "a.jpg", 800, 600)
    calls = []
    real = images.decode_fitted
    monkeypatch.setattr(images, "decode_fitted", lambda *a, **k: calls.append(a) or real(*a, **k))
    images.image_cache().clear()
    settings = ExecutorSettings()
    call = ToolCall("crop_image_normalized", {"bbox_2d": [0.1, 0.1, 0.6, 0.6], "target_image": 1})
    outputs = []
    for _ in range(8):  # a GRPO group: 8 rollouts on the same image
        session = Session(images=[path], settings=settings)
        outputs.append(session.execute(call).images[0].tobytes())
        session.execute(call)
    assert len(calls) == 1 and len(set(outputs)) == 1
    path.write_bytes(photo(tmp_path / "b.jpg", 800, 600, seed=1).read_bytes())  # file changed
    assert Session(images=[path], settings=settings).execute(call).images[0].tobytes() != outputs[0]
    assert len(calls) == 2


def test_cache_is_bounded_by_bytes():
    cache = ImageCache(max_bytes=3 * 100 * 100 * 2)
    for i in range(5):
        cache.put((i,), Image.new("RGB", (100, 100)))
    assert cache.get((0,)) is None and cache.get((3,)) is not None and cache.get((4,)) is not None
    cache.put(("huge",), Image.new("RGB", (1000, 1000)))  # bigger than the whole cache: skipped
    assert cache.get(("huge",)) is None


def test_in_memory_inputs_are_checked_against_the_cap():
    with pytest.raises(images.ImageLoadError, match="over the cap"):
        prepare(
            Image.new("RGB", (500, 500)),
            4 * PIXEL_UNIT,
            100 * PIXEL_UNIT,
            cap=1000,
            data_root=None,
            fast=True,
        )


def counting_decoder(monkeypatch, delay: float = 0.05) -> list:
    """Replace the decoder by a slow counting one, so concurrent callers overlap."""
    import time

    calls, real = [], images.decode_fitted

    def slow(*args, **kwargs):
        calls.append(args[0])
        time.sleep(delay)
        return real(*args, **kwargs)

    monkeypatch.setattr(images, "decode_fitted", slow)
    images.image_cache().clear()
    return calls


def test_concurrent_threads_decode_once(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    path = photo(tmp_path / "a.jpg", 800, 600)
    calls = counting_decoder(monkeypatch)
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda _: prepare(
                    path, 4 * PIXEL_UNIT, 100 * PIXEL_UNIT, cap=10**8, data_root=None, fast=True
                ),
                range(8),
            )
        )
    assert len(calls) == 1 and all(r is results[0] for r in results)


def test_a_group_of_async_rollouts_decodes_once(tmp_path, monkeypatch):
    import asyncio

    path = photo(tmp_path / "a.jpg", 800, 600)
    calls = counting_decoder(monkeypatch)
    call = ToolCall("crop_image_normalized", {"bbox_2d": [0.1, 0.1, 0.6, 0.6], "target_image": 1})

    async def group():
        sessions = [Session(images=[path]) for _ in range(8)]
        return await asyncio.gather(*(s.aexecute(call) for s in sessions))

    observations = asyncio.run(group())
    assert len(calls) == 1
    assert len({o.images[0].tobytes() for o in observations}) == 1 and all(
        o.ok for o in observations
    )


def test_failed_decodes_are_not_cached(tmp_path):
    path = tmp_path / "late.jpg"
    path.write_bytes(b"not yet an image")
    call = ToolCall("crop_image_normalized", {"bbox_2d": [0.1, 0.1, 0.6, 0.6], "target_image": 1})
    images.image_cache().clear()
    assert not Session(images=[path]).execute(call).ok
    photo(path, 400, 300)
    assert Session(images=[path]).execute(call).ok
