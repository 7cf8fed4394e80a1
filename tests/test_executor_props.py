"""Property tests: whatever the model writes, the executor answers; compat equals the reference.

Small pixel bounds keep generated images tiny; the rules under test do not depend on scale.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pixelctl.executor import ExecutorSettings, PixelBounds, Session, ToolCall
from pixelctl.executor.geometry import smart_resize
from pixelctl.models.qwen import PIXEL_UNIT

BOUNDS = PixelBounds(
    4 * PIXEL_UNIT,
    100 * PIXEL_UNIT,
    4 * PIXEL_UNIT,
    16 * PIXEL_UNIT,
    4 * PIXEL_UNIT,
    12 * PIXEL_UNIT,
    4 * PIXEL_UNIT,
    12 * PIXEL_UNIT,
)
MODES = {m: ExecutorSettings(box_mode=m, bounds=BOUNDS) for m in ("compat", "strict")}
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=5),
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=4), kids, max_size=3)
    ),
    max_leaves=8,
)
coordinate = st.floats(-0.3, 1.3) | st.integers(-20, 300) | st.sampled_from([0, 1, 0.5, 1.0])
unit_box = st.tuples(st.floats(0, 0.6), st.floats(0, 0.6), st.floats(0.3, 1), st.floats(0.3, 1))
bbox = unit_box.map(list) | st.lists(coordinate, min_size=4, max_size=4) | junk
target = st.integers(1, 3) | st.integers(-2, 22) | junk
frame_list = (
    st.lists(st.integers(1, 16), min_size=1, max_size=8)
    | st.lists(st.integers(-1, 18), max_size=10)
    | junk
)
crop_calls = st.tuples(
    st.just("crop_image_normalized"),
    st.fixed_dictionaries({"bbox_2d": bbox, "target_image": target}, optional={"label": junk}),
)
frame_calls = st.tuples(
    st.just("select_frames"), st.fixed_dictionaries({"target_frames": frame_list})
)
any_calls = st.tuples(
    st.sampled_from(["crop_image_normalized", "select_frames", "zoom", ""]),
    st.fixed_dictionaries(
        {}, optional={"bbox_2d": bbox, "target_image": target, "target_frames": frame_list}
    ),
)
good_crops = st.tuples(
    st.just("crop_image_normalized"),
    st.fixed_dictionaries({"bbox_2d": unit_box.map(list), "target_image": st.integers(1, 3)}),
)
good_frames = st.tuples(
    st.just("select_frames"),
    st.fixed_dictionaries({"target_frames": st.lists(st.integers(1, 16), min_size=1, max_size=8)}),
)
calls = st.one_of(good_crops, good_crops, good_frames, crop_calls, frame_calls, any_calls)
modes = st.sampled_from(["RGB", "RGBA", "L", "P"])


@st.composite
def pictures(draw):
    side = st.integers(100, 400) | st.integers(100, 400) | st.integers(1, 100)
    w, h = draw(side), draw(side)
    color = draw(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
    image = Image.new("RGB", (w, h), color)
    image.putpixel((0, 0), (255 - color[0], 0, 0))  # not uniform, so crops are distinguishable
    return image.convert(draw(modes))


def check(obs, session_images_before):
    """The invariants of any observation."""
    assert obs is not None
    if not obs.ok:
        assert obs.images == [] and obs.error
        assert obs.text == f"\nExecution error:\n{obs.error}\n"
        assert not obs.error.startswith("Internal error"), obs.error
        return
    for image in obs.images:
        assert image.mode == "RGB" and image.width % 28 == 0 and image.height % 28 == 0
    if obs.crop_box is not None:
        left, upper, right, lower = obs.crop_box
        if session_images_before:  # the images target_image counts (None: compat video)
            target = session_images_before[obs.target - 1]
            assert 0 <= left < right <= target.width and 0 <= upper < lower <= target.height
        assert right - left > 28 and lower - upper > 28
        (crop,) = obs.images
        assert 4 * PIXEL_UNIT <= crop.width * crop.height <= 16 * PIXEL_UNIT
        assert obs.text == f"\nHere is the cropped image (Image Size: {crop.width}x{crop.height}):"
    else:
        assert obs.text.startswith("\nHere are the selected frames (Frame Size: ")
        assert all(4 * PIXEL_UNIT <= im.width * im.height <= 12 * PIXEL_UNIT for im in obs.images)


@FAST
@given(
    st.lists(pictures(), min_size=1, max_size=2),
    st.booleans(),
    st.sampled_from(["compat", "strict"]),
    st.lists(calls, min_size=1, max_size=6),
)
def test_any_call_gets_an_observation_never_an_exception(inputs, as_video, mode, calls):
    if as_video:
        session = Session(video=(inputs * 8)[:16], settings=MODES[mode])
    else:
        session = Session(images=inputs, settings=MODES[mode])
    for name, args in calls:
        try:
            before = session.images
        except Exception:
            before = []  # an input too small to fit the bounds: calls must still be answered
        if len(args) % 2:
            obs = session.execute(ToolCall(name, args))
        else:
            body = json.dumps({"name": name, "arguments": args})  # NaN -> parse error path
            obs = session.execute_text(f"think <tool_call>\n{body}\n</tool_call><|im_end|>")
        check(obs, before if mode == "strict" or not as_video else None)
    c = session.counters
    assert c.calls == len(calls) and c.operations <= 4 and c.failures <= c.calls


def reference_crop(image: Image.Image, box, pad=0.1) -> Image.Image:
    """The reference's crop written out independently: all-below-1 rule, float crop, resize."""
    w, h = image.size
    if box[0] < 1 and box[1] < 1 and box[2] < 1 and box[3] < 1:
        edges = [box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad]
    else:
        edges = [box[0] / w - pad, box[1] / h - pad, box[2] / w + pad, box[3] / h + pad]
    x1, y1, x2, y2 = (min(max(0, e), 1) for e in edges)
    region = image.crop((x1 * w, y1 * h, x2 * w, y2 * h))  # may raise ValueError
    assert region.width > 28 and region.height > 28
    region = region.convert("RGB")
    rh, rw = smart_resize(region.height, region.width, 28, 4 * PIXEL_UNIT, 16 * PIXEL_UNIT)
    return region.resize((rw, rh))


@FAST
@given(
    st.integers(29, 160),
    st.integers(29, 160),
    st.lists(st.lists(coordinate, min_size=4, max_size=4), min_size=1, max_size=3),
)
def test_compat_crops_are_the_reference_pixels(w, h, boxes):
    source = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    session = Session(images=[source], settings=MODES["compat"])
    images = [session.input_image(1)]
    for i, box in enumerate(boxes):
        target = 1 if i == 0 else len(images)  # chain: crop the latest image
        obs = session.execute(
            ToolCall("crop_image_normalized", {"bbox_2d": box, "target_image": target})
        )
        try:
            expected = reference_crop(images[target - 1], [float(v) for v in box])
        except (ValueError, AssertionError):
            assert not obs.ok
            continue
        assert obs.ok and obs.images[0].tobytes() == expected.tobytes()
        images.append(obs.images[0])


@settings(deadline=None)  # image work: no per-example deadline on a shared CPU
@given(
    st.lists(st.floats(0, 1), min_size=4, max_size=4), st.integers(29, 400), st.integers(29, 400)
)
def test_strict_accepts_exactly_ordered_unit_boxes(box, w, h):
    session = Session(images=[Image.new("RGB", (w, h))], settings=MODES["strict"])
    fitted = session.input_image(1)
    obs = session.execute(ToolCall("crop_image_normalized", {"bbox_2d": box, "target_image": 1}))
    if not (box[0] < box[2] and box[1] < box[3]):
        assert not obs.ok and "x1 < x2 and y1 < y2" in obs.error
        return
    fw, fh = fitted.size
    left, right = (round(min(max(0, v), 1) * fw) for v in (box[0] - 0.1, box[2] + 0.1))
    upper, lower = (round(min(max(0, v), 1) * fh) for v in (box[1] - 0.1, box[3] + 0.1))
    assert obs.ok == (right - left > 28 and lower - upper > 28)
    if obs.ok:
        assert obs.crop_box == (left, upper, right, lower)
    else:
        assert "larger than 28 px" in obs.error
