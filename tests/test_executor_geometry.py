"""Crop geometry and smart_resize: worked examples with exact pixels, both box modes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pixelctl.executor.geometry import crop_box, normalized_box, pixel_box, smart_resize
from pixelctl.executor.observe import ToolError
from pixelctl.executor.settings import EVAL_BOUNDS, TRAIN_BOUNDS
from pixelctl.models.qwen import PIXEL_UNIT


def box(raw, w, h, mode="compat"):
    return crop_box(raw, w, h, mode=mode, pad=0.1, min_side=28)


# --- smart_resize ---------------------------------------------------------------------------------
def test_vstar_sized_image_at_train_bounds_shrinks_to_2000_tokens():
    # 1582x2246 = 3.55 Mpx > 2000*784: beta = 1.505, floor to multiples of 28.
    h, w = smart_resize(
        1582, 2246, 28, TRAIN_BOUNDS.image_min_pixels, TRAIN_BOUNDS.image_max_pixels
    )
    assert (h, w) == (1036, 1484)
    assert h * w <= 2000 * PIXEL_UNIT


def test_eval_bounds_only_round_to_28_with_half_to_even():
    # 1582/28 = 56.5 rounds to 56 (Python rounds half to even), 2246/28 = 80.2 to 80.
    assert smart_resize(
        1582, 2246, 28, EVAL_BOUNDS.image_min_pixels, EVAL_BOUNDS.image_max_pixels
    ) == (1568, 2240)


def test_small_crop_is_enlarged_to_min_pixels():
    # 30x30 -> 28x28 = 784 < 3136: beta = sqrt(3136/900), ceil to 56.
    assert smart_resize(30, 30, 28, 4 * PIXEL_UNIT, 1000 * PIXEL_UNIT) == (56, 56)


def test_extreme_aspect_ratio_and_inverted_bounds_raise():
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2010, 28, 4 * PIXEL_UNIT, 1000 * PIXEL_UNIT)
    with pytest.raises(ValueError, match="max_pixels"):
        smart_resize(100, 100, 28, 10 * PIXEL_UNIT, 5 * PIXEL_UNIT)


@given(st.integers(28, 4000), st.integers(28, 4000), st.integers(4, 300), st.integers(0, 6000))
def test_smart_resize_meets_realistic_bounds(h, w, lo, extra):
    # Within bounds whenever max >= 3*min + 2 and >= 200 tokens (all presets). Narrower bounds
    # can overshoot (28x28 with min = max = 5 tokens gives 84x84) or floor a side to 0 (28x407
    # with max 14 tokens); `images.fit` refuses such results.
    if max(h, w) / min(h, w) > 200:
        return
    hi = max(3 * lo + 2, 200) + extra
    nh, nw = smart_resize(h, w, 28, lo * PIXEL_UNIT, hi * PIXEL_UNIT)
    assert nh % 28 == 0 and nw % 28 == 0
    assert lo * PIXEL_UNIT <= nh * nw <= hi * PIXEL_UNIT


def test_narrow_bounds_break_qwen_vl_utils_and_fit_refuses_them():
    from pixelctl.executor.images import fit

    assert smart_resize(28, 28, 28, 5 * PIXEL_UNIT, 5 * PIXEL_UNIT) == (84, 84)
    assert smart_resize(28, 407, 28, 4 * PIXEL_UNIT, 14 * PIXEL_UNIT) == (0, 392)
    with pytest.raises(ValueError, match="cannot be resized"):
        fit(Image.new("RGB", (28, 28)), 5 * PIXEL_UNIT, 5 * PIXEL_UNIT)


# --- compat boxes (the reference's arithmetic) ----------------------------------------------------
def test_compat_reads_a_box_with_a_1_as_absolute_pixels():
    # docs/method.md §2 quirk: [0.5, 0.5, 1.0, 1.0] is not "all below 1", so it is read as pixels:
    # x2 = 1/1484 + 0.1 -> 149.4 px, y2 = 1/1036 + 0.1 -> 104.6 px; the top-left corner.
    assert box([0.5, 0.5, 1.0, 1.0], 1484, 1036) == (0, 0, 149, 105)


def test_strict_reads_the_same_box_as_normalized():
    # (0.4*1484, 0.4*1036) = (593.6, 414.4) -> (594, 414); the lower-right quadrant.
    assert box([0.5, 0.5, 1.0, 1.0], 1484, 1036, "strict") == (594, 414, 1484, 1036)


def test_compat_normalized_box_is_padded_and_rounded():
    # 0.3 - 0.1 = 0.19999999999999998 -> 159.99999999999997 px -> 160.
    assert box([0.2, 0.3, 0.4, 0.5], 1000, 800) == (100, 160, 500, 480)


def test_compat_absolute_pixel_box():
    # [100, 200, 300, 400] on 1000x1000: (0.1-0.1, 0.2-0.1, 0.3+0.1, 0.4+0.1)
    assert box([100, 200, 300, 400], 1000, 1000) == (0, 100, 400, 500)


def test_padding_is_clipped_to_the_image():
    assert box([0.0, 0.0, 0.05, 0.05], 1000, 1000, "strict") == (0, 0, 150, 150)
    assert box([0.95, 0.95, 1.0, 1.0], 1000, 1000, "strict") == (850, 850, 1000, 1000)


def test_negative_values_are_normalized_in_compat_and_rejected_in_strict():
    assert box([-0.1, 0.2, 0.5, 0.6], 1000, 1000) == (0, 100, 600, 700)
    with pytest.raises(ToolError, match=r"fractions in \[0, 1\].*divide x by 1000"):
        box([-0.1, 0.2, 0.5, 0.6], 1000, 1000, "strict")


def test_strict_rejects_pixel_boxes_and_says_how_to_normalize():
    with pytest.raises(ToolError, match="divide x by 640 and y by 480"):
        box([100, 80, 400, 300], 640, 480, "strict")


def test_too_small_crop_message_per_mode():
    # [0.5]*4 padded to 0.4..0.6 of 100 px = 20x20, not larger than 28.
    with pytest.raises(ToolError) as ref:
        box([0.5, 0.5, 0.5, 0.5], 100, 100)
    assert str(ref.value) == "Cropped image is too small: 20x20"
    with pytest.raises(ToolError) as clear:
        box([0.5, 0.5, 0.51, 0.51], 100, 100, "strict")
    assert "21x21" in str(clear.value) and "larger than 28 px" in str(clear.value)


def test_exactly_28_px_is_too_small():
    # 0.4..0.68 of 100 = 40..68 = 28 px wide: the reference needs > 28.
    with pytest.raises(ToolError, match="28x"):
        box([0.5, 0.5, 0.58, 0.9], 100, 100)


def test_inverted_boxes():
    with pytest.raises(ToolError, match="x1 < x2 and y1 < y2"):
        box([0.6, 0.2, 0.4, 0.5], 1000, 1000, "strict")
    # compat pads first: inverted by 0.2 collapses to zero width (reference behaviour) ...
    with pytest.raises(ToolError, match="too small: 0x"):
        box([0.6, 0.2, 0.4, 0.5], 1000, 1000)
    # ... and inverted by more stays inverted: a clear message instead of Pillow's.
    with pytest.raises(ToolError, match="x1 < x2"):
        box([0.9, 0.1, 0.5, 0.5], 1000, 1000)


@pytest.mark.parametrize(
    "raw",
    [
        [0.1, 0.2, 0.3],
        [0.1, 0.2, 0.3, 0.4, 0.5],
        [0.1, 0.2, 0.3, math.nan],
        [0.1, 0.2, math.inf, 0.4],
        [0.1, 0.2, True, 0.4],
        ["0.1", 0.2, 0.3, 0.4],
        [[0.1, 0.2], [0.3, 0.4]],
        [0.1, 0.2, 0.3, 10**400],
        "0.1,0.2,0.3,0.4",
        None,
        {"x1": 0.1},
    ],
)
@pytest.mark.parametrize("mode", ["compat", "strict"])
def test_malformed_boxes_get_the_valid_form(raw, mode):
    with pytest.raises(ToolError, match=r"list of four numbers \[x1, y1, x2, y2\]"):
        box(raw, 500, 500, mode)


@settings(deadline=None)  # creates images: no per-example deadline on a shared CPU
@given(
    st.lists(st.floats(-0.5, 1.5, allow_nan=False), min_size=4, max_size=4),
    st.integers(1, 400),
    st.integers(1, 400),
)
def test_pixel_box_is_what_pillow_crops_for_the_float_box(raw, w, h):
    try:
        norm = normalized_box(raw, tuple(raw), w, h, "compat", 0.1)
        left, upper, right, lower = pixel_box(raw, norm, w, h)
    except ToolError:
        return
    fbox = (norm[0] * w, norm[1] * h, norm[2] * w, norm[3] * h)
    image = Image.new("L", (w, h))
    assert image.crop(fbox).size == (right - left, lower - upper)
    assert 0 <= left <= right <= w and 0 <= upper <= lower <= h
