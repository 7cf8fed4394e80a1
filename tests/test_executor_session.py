"""Sessions: observations (exact strings of docs/method.md §2), index conventions per mode, limits, counters."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pixelctl.executor import (
    EVAL_BOUNDS,
    ExecutorSettings,
    ImageLoadError,
    Session,
    ToolCall,
)
from pixelctl.prompt import format_tool_call

COMPAT = ExecutorSettings()
STRICT = ExecutorSettings(box_mode="strict")


def crop(bbox, target=1) -> ToolCall:
    return ToolCall("crop_image_normalized", {"bbox_2d": bbox, "target_image": target})


def frames(*indices) -> ToolCall:
    return ToolCall("select_frames", {"target_frames": list(indices)})


def gradient(w: int, h: int) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], -1).astype(np.uint8))


def video(n=16, side=56) -> list[Image.Image]:
    return [Image.new("RGB", (side, side), (10 * i, 0, 0)) for i in range(1, n + 1)]


def error_of(obs) -> str:
    assert not obs.ok and obs.images == []
    assert obs.text == f"\nExecution error:\n{obs.error}\n"
    return obs.error


# --- images ---------------------------------------------------------------------------------------
def test_spec_worked_example_vstar_image_compat_quirk():
    session = Session(images=[gradient(2246, 1582)])
    obs = session.execute(crop([0.5, 0.5, 1.0, 1.0]))
    # input fitted to 1484x1036; the box is read as pixels -> (0, 0, 149, 105) -> 140x112.
    assert session.input_image(1).size == (1484, 1036)
    assert obs.ok and obs.crop_box == (0, 0, 149, 105)
    assert obs.text == "\nHere is the cropped image (Image Size: 140x112):"
    assert [im.size for im in obs.images] == [(140, 112)] and obs.images[0].mode == "RGB"
    assert (obs.name, obs.target) == ("crop_image_normalized", 1)


def test_crop_pixels_are_the_reference_pipeline():
    source = gradient(640, 480)
    obs = Session(images=[source], settings=STRICT).execute(crop([0.25, 0.25, 0.5, 0.5]))
    # reference: fit input (640x480 -> 644x476 at 28-multiples), crop the padded box, fit crop.
    fitted = source.resize((644, 476), Image.Resampling.BICUBIC)
    region = fitted.crop((0.15 * 644, 0.15 * 476, 0.6 * 644, 0.6 * 476))
    expected = region.resize((280, 224), Image.Resampling.BICUBIC)
    assert obs.crop_box == (97, 71, 386, 286)
    assert obs.images[0].tobytes() == expected.tobytes()


def test_chained_crop_targets_the_returned_image():
    session = Session(images=[gradient(2246, 1582)])
    session.execute(crop([0.5, 0.5, 1.0, 1.0]))
    obs = session.execute(crop([0.2, 0.2, 0.3, 0.3], target=2))
    # on the 140x112 crop: (0.1*140, 0.1*112, 0.4*140, 0.4*112) = (14, 11.2, 56, 44.8)
    assert obs.crop_box == (14, 11, 56, 45) and obs.target == 2
    assert obs.text == "\nHere is the cropped image (Image Size: 84x56):"
    assert [im.size for im in session.images] == [(1484, 1036), (140, 112), (84, 56)]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            COMPAT,
            "Execution Error: Incorrect `target_image` argument in `crop_image_normalized` "
            "operation. You can only pick an image within [1,2]",
        ),
        (
            STRICT,
            "`target_image` must be an integer from 1 to 2 (1 is the original image, higher "
            "numbers the images returned since); got 3.",
        ),
    ],
)
def test_target_image_out_of_range(settings, message):
    session = Session(images=[gradient(300, 300)], settings=settings)
    session.execute(crop([0.1, 0.1, 0.6, 0.6]))
    assert error_of(session.execute(crop([0.1, 0.1, 0.6, 0.6], target=3))) == message
    zero = error_of(session.execute(crop([0.1, 0.1, 0.6, 0.6], target=0)))
    assert zero == message.replace("got 3", "got 0")  # the reference would wrap to the last image


@pytest.mark.parametrize("target", [1.0, "1", None, True, [1]])
@pytest.mark.parametrize("settings", [COMPAT, STRICT])
def test_target_image_must_be_an_integer(target, settings):
    message = error_of(
        Session(images=[gradient(300, 300)], settings=settings).execute(
            crop([0.1, 0.1, 0.6, 0.6], target)
        )
    )
    assert message.startswith("`target_image` must be an integer from 1 to 1")


def test_select_frames_on_an_image():
    compat = error_of(Session(images=[gradient(300, 300)]).execute(frames(1)))
    assert compat == (
        "Execution Error: You attempted to `select_frames` from **image** not **video**. You "
        "should use `crop_image_normalized` instead for inspecting **image**."
    )
    # the reference refuses before reading the arguments
    bare = Session(images=[gradient(300, 300)]).execute(ToolCall("select_frames", {}))
    assert error_of(bare) == compat
    strict = error_of(Session(images=[gradient(300, 300)], settings=STRICT).execute(frames(1)))
    assert "only on a video" in strict and "`target_image` from 1 to 1" in strict


def test_unknown_tool_and_arguments():
    session = Session(images=[gradient(300, 300)], settings=STRICT)
    assert 'Unknown tool "zoom"' in error_of(session.execute(ToolCall("zoom", {})))
    missing = error_of(
        session.execute(ToolCall("crop_image_normalized", {"bbox_2d": [0, 0, 1, 1]}))
    )
    assert missing == (
        "`crop_image_normalized` needs the argument(s) `bbox_2d`, `target_image`; missing "
        "`target_image`."
    )
    extra = {"bbox_2d": [0.1, 0.1, 0.6, 0.6], "target_image": 1, "label": "dog"}
    assert 'remove "label"' in error_of(session.execute(ToolCall("crop_image_normalized", extra)))
    assert Session(images=[gradient(300, 300)]).execute(ToolCall("crop_image_normalized", extra)).ok


def test_rgba_input_is_composited_on_white():
    clear = Image.new("RGBA", (300, 300), (255, 0, 0, 0))
    obs = Session(images=[clear]).execute(crop([0.1, 0.1, 0.6, 0.6]))
    assert obs.images[0].getextrema() == ((255, 255), (255, 255), (255, 255))


# --- video ----------------------------------------------------------------------------------------
def test_compat_video_numbering_follows_the_reference():
    session = Session(video=video(), settings=ExecutorSettings(max_operations=8))
    # Before anything was returned, target_image is a video frame.
    first = session.execute(crop([0.0, 0.0, 0.99, 0.99], target=3))
    assert first.images[0].getpixel((5, 5)) == (30, 0, 0)
    got = session.execute(frames(2, 5))
    # [video, crop] -> the new frames are announced as 2 to 3 ...
    assert got.text == "\nHere are the selected frames (Frame Size: 56x56, Numbered 2 to 3):"
    assert [im.getpixel((0, 0)) for im in got.images] == [(20, 0, 0), (50, 0, 0)]
    # ... and target_image indexes [video, crop, frame 2, frame 5]: 3 is frame 2, 4 frame 5.
    again = session.execute(crop([0.0, 0.0, 0.99, 0.99], target=3))
    assert again.images[0].getpixel((5, 5)) == (20, 0, 0)
    fifth = session.execute(crop([0.0, 0.0, 0.99, 0.99], target=4))
    assert fifth.images[0].getpixel((5, 5)) == (50, 0, 0)
    assert error_of(session.execute(crop([0.1, 0.1, 0.9, 0.9], target=1))) == (
        "Execution Error: Incorrect `target_image` argument in `crop_image_normalized` operation. "
        "You can only pick an image within range [2,6], but the current argument `target_image=1`."
    )
    # past the end the reference crashes (IndexError): the clear message
    assert error_of(session.execute(crop([0.1, 0.1, 0.9, 0.9], target=7))) == (
        "`target_image` must be an integer from 2 to 6 (1 is the video; 2 on are the images "
        "returned so far); got 7."
    )


def test_issue_example_select_then_crop():
    session = Session(video=video())
    got = session.execute(frames(2, 5))
    assert got.text.endswith("Numbered 1 to 2):")
    assert "range [2,3]" in error_of(session.execute(crop([0.0, 0.0, 0.99, 0.99], target=1)))
    two = session.execute(crop([0.0, 0.0, 0.99, 0.99], target=2))
    three = session.execute(crop([0.0, 0.0, 0.99, 0.99], target=3))
    assert two.images[0].getpixel((5, 5)) == (20, 0, 0)
    assert three.images[0].getpixel((5, 5)) == (50, 0, 0)


def test_compat_video_target_before_any_return():
    assert error_of(Session(video=video()).execute(crop([0.1, 0.1, 0.9, 0.9], target=17))) == (
        "Execution Error: Incorrect `target_image` argument in `crop_image_normalized` operation. "
        "You can only pick an image **from** the video within [1,16], but the current argument "
        "`target_image=17`."
    )
    assert error_of(Session(video=video()).execute(crop([0.1, 0.1, 0.9, 0.9], target="2"))) == (
        '`target_image` must be an integer from 1 to 16 (the video frames); got "2".'
    )


def test_strict_video_numbers_frames_then_returned_images():
    session = Session(video=video(), settings=STRICT)
    got = session.execute(frames(2, 5))
    assert got.text == "\nHere are the selected frames (Frame Size: 56x56, Numbered 17 to 18):"
    returned = session.execute(crop([0.0, 0.0, 1.0, 1.0], target=18))
    assert returned.images[0].getpixel((5, 5)) == (50, 0, 0)
    original = session.execute(crop([0.0, 0.0, 1.0, 1.0], target=2))
    assert original.images[0].getpixel((5, 5)) == (20, 0, 0)
    message = error_of(session.execute(crop([0.0, 0.0, 1.0, 1.0], target=30)))
    assert "from 1 to 20 (1 to 16 are the video frames, 17 to 20 the images returned" in message


@pytest.mark.parametrize(
    ("selection", "compat", "strict"),
    [
        (
            list(range(1, 10)),
            "Execution Error: You have selected 9 frames in total. Think again which frames you "
            "need to check in details (no more than 8 frames)",
            "You selected 9 frames; select at most 8 frames per call.",
        ),
        (
            [3, 17],
            "Execution Error: There are 16 frames numbered in range [1,16]. Your selection "
            "`target_frames=[3, 17]` is out of range.",
            "`target_frames` must be a non-empty list of integers from 1 to 16 (the video has 16 "
            "frames); got [3, 17].",
        ),
        (
            [0],
            "Execution Error: There are 16 frames numbered in range [1,16]. Your selection "
            "`target_frames=[0]` is out of range.",
            None,
        ),
        ([], None, None),
        ([1.0], None, None),
        ("1,2", None, None),
        ([[1, 2]], None, None),
    ],
)
def test_frame_selection_errors(selection, compat, strict):
    for settings, expected in ((COMPAT, compat), (STRICT, strict)):
        message = error_of(
            Session(video=video(), settings=settings).execute(
                frames(*selection)
                if isinstance(selection, list)
                else ToolCall("select_frames", {"target_frames": selection})
            )
        )
        if expected is None:
            assert message.startswith(
                "`target_frames` must be a non-empty list of integers from 1 to 16"
            )
        else:
            assert message == expected


def test_frames_are_resized_to_the_frame_bounds():
    big = [Image.new("RGB", (1280, 720), (i, i, i)) for i in range(16)]
    session = Session(video=big)
    # video bounds (<= 512 tokens): beta = 1.515 -> 840x448; train frames (<= 400 tokens) -> 756x392.
    assert session.video_frames()[0].size == (840, 448)
    assert session.execute(frames(1)).images[0].size == (756, 392)
    evaluation = Session(video=big, settings=ExecutorSettings(bounds=EVAL_BOUNDS))
    assert evaluation.execute(frames(1)).images[0].size == (840, 448)  # returned as the input was


# --- limits and counters --------------------------------------------------------------------------
def test_fifth_call_ends_the_rollout_unexecuted():
    session = Session(images=[gradient(400, 400)])
    for _ in range(4):
        assert session.execute(crop([0.1, 0.1, 0.6, 0.6])).ok
    fifth = session.execute(crop([0.1, 0.1, 0.6, 0.6]))
    assert fifth.stop and "maximum of 4 visual operations" in error_of(fifth)
    c = session.counters
    assert (c.calls, c.operations, c.failures, c.images) == (5, 4, 1, 5)


def test_image_limit_drops_the_result_and_stops():
    session = Session(images=[gradient(400, 400)], settings=ExecutorSettings(max_images=3))
    assert session.execute(crop([0.1, 0.1, 0.6, 0.6])).ok
    assert session.execute(crop([0.1, 0.1, 0.6, 0.6])).ok
    third = session.execute(crop([0.1, 0.1, 0.6, 0.6]))
    assert third.stop and "at most 3 are allowed" in error_of(third)
    assert session.counters.images == 3 and len(session.returned) == 2


def test_token_budget_is_checked_before_executing():
    session = Session(images=[gradient(400, 400)])
    obs = session.execute(crop([0.1, 0.1, 0.6, 0.6]), tokens_used=12 * 1024 - 199)
    assert obs.stop and "over the budget of 12088" in error_of(obs)
    assert session.counters.operations == 0
    assert session.execute(crop([0.1, 0.1, 0.6, 0.6]), tokens_used=12 * 1024 - 200).ok


def test_execute_text_counts_parse_errors_and_ignores_final_answers():
    session = Session(images=[gradient(400, 400)])
    assert session.execute_text("So the answer is \\boxed{3}.") is None
    assert session.counters.calls == 0
    bad = session.execute_text("<tool_call>\n{oops\n</tool_call><|im_end|>")
    assert "not valid JSON" in error_of(bad)
    good = session.execute_text(
        "Zoom. "
        + format_tool_call(
            "crop_image_normalized", {"bbox_2d": [0.1, 0.1, 0.6, 0.6], "target_image": 1}
        )
    )
    assert good.ok
    c = session.counters
    assert (c.calls, c.operations, c.failures, c.images) == (2, 2, 1, 2)


def test_aexecute_matches_execute():
    sync = Session(images=[gradient(500, 300)]).execute(crop([0.2, 0.2, 0.7, 0.7]))

    async def main():
        session = Session(images=[gradient(500, 300)])
        return await asyncio.gather(
            session.aexecute(crop([0.2, 0.2, 0.7, 0.7])),
            session.aexecute_text("<tool_call>\n{}\n</tool_call>"),
        )

    obs, bad = asyncio.run(main())
    assert obs.text == sync.text and obs.images[0].tobytes() == sync.images[0].tobytes()
    assert "missing ['name', 'arguments']" in error_of(bad)


# --- bad inputs -----------------------------------------------------------------------------------
def test_bad_input_files_become_execution_errors(tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10)
    truncated = tmp_path / "truncated.jpg"
    buffer = tmp_path / "full.jpg"
    gradient(400, 300).save(buffer, quality=90)
    truncated.write_bytes(buffer.read_bytes()[:2000])
    cases = {
        corrupt: "could not be",
        truncated: "could not be decoded",
        tmp_path / "missing.png": "does not exist",
    }
    for path, expected in cases.items():
        session = Session(images=[path])
        message = error_of(session.execute(crop([0.1, 0.1, 0.6, 0.6])))
        assert message.startswith("An input image could not be used: ") and expected in message
        with pytest.raises(ImageLoadError):
            _ = session.images


def test_pixel_cap_and_data_root(tmp_path):
    path = tmp_path / "inside" / "a.png"
    path.parent.mkdir()
    gradient(400, 300).save(path)
    capped = Session(images=[path], settings=ExecutorSettings(max_input_pixels=100_000))
    assert "400x300 = 120000 px, over the cap of 100000 px" in error_of(
        capped.execute(crop([0.1, 0.1, 0.6, 0.6]))
    )
    root = ExecutorSettings(data_root=tmp_path / "inside")
    assert Session(images=["a.png"], settings=root).execute(crop([0.1, 0.1, 0.6, 0.6])).ok
    (tmp_path / "inside" / "link.png").symlink_to(buffer := tmp_path / "outside.png")
    gradient(100, 100).save(buffer)
    for escape in ["../outside.png", str(buffer), "link.png"]:
        message = error_of(
            Session(images=[escape], settings=root).execute(crop([0.1, 0.1, 0.6, 0.6]))
        )
        assert "outside the data root" in message


def test_executor_and_prompt_do_not_import_torch():
    code = "import sys, pixelctl.executor, pixelctl.prompt; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
