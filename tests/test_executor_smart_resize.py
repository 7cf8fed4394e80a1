"""Our `smart_resize` must equal qwen-vl-utils' (which imports torch, so the executor cannot)."""

from __future__ import annotations

import itertools

import pytest

from pixelctl.executor.geometry import smart_resize
from pixelctl.executor.settings import EVAL_BOUNDS, TRAIN_BOUNDS
from pixelctl.models.qwen import PIXEL_UNIT

pytestmark = pytest.mark.slow  # importing qwen_vl_utils imports torch (~5 s)


def test_identical_to_qwen_vl_utils_over_many_sizes_and_bounds():
    qwen = pytest.importorskip("qwen_vl_utils")
    sides = [1, 14, 27, 28, 29, 42, 55, 56, 57, 100, 333, 512, 999, 1036, 1582, 2160, 2246, 3840]
    sides += list(range(20, 3000, 97))
    bounds = [
        (None, None),
        (4 * PIXEL_UNIT, 16 * PIXEL_UNIT),
        (5 * PIXEL_UNIT, 5 * PIXEL_UNIT),
        (10 * PIXEL_UNIT, 9 * PIXEL_UNIT),
    ]
    for b in (TRAIN_BOUNDS, EVAL_BOUNDS):
        bounds += [(b.image_min_pixels, b.image_max_pixels), (b.crop_min_pixels, b.crop_max_pixels)]
        bounds += [(b.frame_min_pixels, b.frame_max_pixels)]
    checked = 0
    for h, w in itertools.product(sides, sides):
        for lo, hi in bounds:
            try:
                theirs = qwen.smart_resize(h, w, factor=28, min_pixels=lo, max_pixels=hi)
            except (ValueError, AssertionError) as exc:
                with pytest.raises(ValueError):
                    smart_resize(h, w, 28, lo, hi)
                assert exc is not None
                continue
            assert smart_resize(h, w, 28, lo, hi) == theirs, (h, w, lo, hi)
            checked += 1
    assert checked > 10000


def test_visual_tokens_counts_merged_28px_units_of_the_fitted_size():
    from pixelctl.executor import visual_tokens

    assert visual_tokens(28, 28) == 4  # raised to the 4-unit minimum: 56×56
    assert visual_tokens(300, 100) == 11 * 4  # 308×112
    b = TRAIN_BOUNDS  # a 1080p frame under the train input cap: 924×1652
    assert visual_tokens(1080, 1920, b.image_min_pixels, b.image_max_pixels) == 33 * 59
    with pytest.raises(ValueError):
        visual_tokens(1, 300)  # an aspect ratio past 200, as smart_resize
