"""An oracle of the reference executor and rollout bookkeeping, plus golden cases for it.

Written from reading TIGER-AI-Lab/Pixel-Reasoner at HEAD a3a6c3a, file
curiosity_driven_rl/openrlhf/trainer/ppo_utils/experience_maker.py (last changed in 9ddb524):
`execute_tool`, `CropImageNormalized.call`, `SelectFrames.call`, `parse_last_tool`,
`resize_cropped`, the multi-turn loop of `RemoteExperienceMaker` (the `while True` over
`all_flags` / `temp_error_flags` / `final_error_flags`) and the shaped reward after it. None of
their code is copied: this is a restatement in plain Python of what that code does with the
values a model sends, written to be read next to it. The oracle deliberately evaluates the same
Python operations (comparisons, `- 1`, list indexing, `max`, Pillow's float crop) so that what
crashes the reference crashes here.

A verdict is one of
- ``ok``: the reference returns images (crops / frames) and an observation text;
- ``message``: the reference raises one of its own assertions: the exact text it shows;
- ``crash``: the reference raises a Python exception it never meant to show (KeyError, ...);
- ``deviation``: the reference succeeds, or answers with its own message, on an input that
  pixelctl refuses on purpose (documented in docs/executor.md): the verdict names which one.
`stop` marks the limits: a call refused before executing, or a result dropped for the image cap.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from pixelctl.executor.geometry import smart_resize  # equal to qwen-vl-utils' (own test)

TOOL_START, TOOL_END = "<tool_call>", "</tool_call>"
TOKEN_BUDGET = 12 * 1024 - 200  # `cur_tokens > 12*1024-200` forces the end
MAX_IMAGES = 16  # `max_imgnum`
PX = 28 * 28
# `resize_cropped` bounds in the loop: crops 4..zoom_maxsize (1000) tokens in training,
# 256..5120 in evaluation; selected frames 4..select_maxsize (400) in training, untouched in eval.
CROP_BOUNDS = {"train": (4 * PX, 1000 * PX), "eval": (256 * PX, 5120 * PX)}
FRAME_BOUNDS = {"train": (4 * PX, 400 * PX), "eval": None}

E = "Execution Error: "
WRONG_TARGET = E + "Incorrect `target_image` argument in `crop_image_normalized` operation. "


@dataclass
class Verdict:
    kind: str  # ok | message | crash | deviation | limit (refused unexecuted)
    text: str = ""  # the message, the crash's exception type, or the deviation's name
    images: list[Image.Image] = field(default_factory=list)
    observation: str = ""  # ok: the user-turn text
    stop: bool = False
    box: tuple[int, int, int, int] | None = None  # ok crops: the pixel box Pillow cut


class _Flags:
    """Inputs the reference accepts but pixelctl refuses on purpose (docs/executor.md)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, name: str) -> None:
        if name not in self.names:
            self.names.append(name)


def to_rgb(image: Image.Image) -> Image.Image:
    """The reference's `to_rgb`: RGBA pasted on white with its alpha, anything else convert()."""
    if image.mode == "RGBA":
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(image, mask=image.split()[3])
        return white
    return image.convert("RGB")


def resize_to(image: Image.Image, bounds: tuple[int, int]) -> Image.Image:
    """`resize_cropped` / qwen-vl-utils' fetch: RGB, then smart_resize, Pillow's default filter."""
    image = to_rgb(image)
    h, w = smart_resize(image.height, image.width, 28, bounds[0], bounds[1])
    return image.resize((w, h))  # Pillow's default for RGB is bicubic


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def reference_crop(image: Image.Image, bbox: Any, flags: _Flags, pad: float = 0.1):
    """`CropImageNormalized.call`: (pixel box, region) or raises what the reference raises."""
    width, height = image.size
    if isinstance(bbox, list):
        head = bbox[:4]
        if any(_is_bool(v) for v in head):
            flags.add("bbox-bool")  # the reference does arithmetic with true/false
        if any(isinstance(v, float) and not math.isfinite(v) for v in head):
            flags.add("bbox-non-finite")  # inf is clipped to 1, NaN to 0
        if len(bbox) > 4:
            flags.add("bbox-extra-values")  # the reference ignores the fifth value on
    # all four below 1: normalized; anything else (a 1.0 included) is read as pixels
    if bbox[0] < 1 and bbox[1] < 1 and bbox[2] < 1 and bbox[3] < 1:
        raw = [float(bbox[0]) - pad, float(bbox[1]) - pad, float(bbox[2]) + pad]
        raw.append(float(bbox[3]) + pad)
    else:
        raw = [float(bbox[0]) / width - pad, float(bbox[1]) / height - pad]
        raw += [float(bbox[2]) / width + pad, float(bbox[3]) / height + pad]
    x1, y1, x2, y2 = (min(max(0, v), 1) for v in raw)
    region = image.crop((x1 * width, y1 * height, x2 * width, y2 * height))  # Pillow rounds
    if not (region.width > 28 and region.height > 28):
        raise AssertionError(f"Cropped image is too small: {region.width}x{region.height}")
    # the box Pillow cut, for comparison (Pillow: round each float, half to even)
    box = tuple(round(v) for v in (x1 * width, y1 * height, x2 * width, y2 * height))
    return box, region


class ReferenceRollout:
    """One conversation as the reference's loop keeps it: `all_images[uuid]` is `items`."""

    def __init__(
        self,
        images: list[Image.Image] | None = None,
        frames: list[Image.Image] | None = None,
        bounds: str = "train",
    ) -> None:
        self.is_video = frames is not None
        # the video is ONE item, a list of frames; returned images are appended after it
        self.items: list[Any] = [list(frames)] if frames is not None else list(images or [])
        self.bounds = bounds
        self.num_toolcalls = 0  # turns that ended with </tool_call>, executed or not
        self.temp_error = False  # did the last executed operation fail
        self.final_error = False
        self.finished = False
        self.stop_reason: str | None = None

    # ---------------------------------------------------------------- one turn of the loop
    def turn(self, text: str, tokens: int = 0) -> Verdict | None:
        """A generated assistant turn; None when the rollout ends without executing anything."""
        assert not self.finished
        rsp = text.replace("<|im_end|>", "")
        wants_tool = rsp.endswith(TOOL_END)
        forced = self.num_toolcalls > 3 or len(self.items) > MAX_IMAGES or tokens > TOKEN_BUDGET
        finish = not wants_tool or forced
        self.final_error = finish and self.temp_error
        if wants_tool:
            self.num_toolcalls += 1
        if finish:
            self.finished = True
            self.stop_reason = "limit" if wants_tool else "answer"
            return Verdict("limit", stop=True) if wants_tool else None
        self.temp_error = False
        verdict = self.call(rsp)
        if verdict.kind != "ok":
            self.temp_error = True  # the `except` branch: any failure, deliberate or not
            return verdict
        if len(self.items) + len(verdict.images) > MAX_IMAGES:
            self.finished, self.stop_reason = True, "limit"  # dropped; final_error stays False
            verdict.stop = True
            return verdict
        self.items += verdict.images
        return verdict

    # ---------------------------------------------------------------- parse + execute
    def call(self, turn_text: str) -> Verdict:
        """`parse_last_tool` on the turn, then `execute_tool`; a verdict, never an exception."""
        flags = _Flags()
        if TOOL_START not in turn_text:
            # the reference splits the whole conversation text, so it re-reads an earlier call
            return Verdict("deviation", "no-open-tag")
        body = turn_text.split(TOOL_START)[-1].split(TOOL_END)[0]

        def constant(name: str) -> float:
            flags.add("json-constant")  # NaN / Infinity literals: json.loads takes them
            return float(name.replace("Infinity", "inf"))

        try:
            data = json.loads(body, parse_constant=constant)
            if isinstance(data, dict) and set(data) - {"name", "arguments"}:
                flags.add("json-extra-keys")  # the reference reads the two keys it needs
            if isinstance(data, dict) and not isinstance(data.get("arguments"), dict):
                flags.add("json-arguments-not-object")
            name, args = data["name"], data["arguments"]
            if name not in ("crop_image_normalized", "select_frames"):
                raise KeyError(name)  # `self.operations[tool_name]`
            verdict = self._select(args, flags) if name == "select_frames" else None
            if verdict is None:
                verdict = self._crop(args, flags)
        except AssertionError as exc:
            verdict = Verdict("message", str(exc))
        except Exception as exc:  # everything else leaks a Python error into the observation
            verdict = Verdict("crash", type(exc).__name__)
        if flags.names and verdict.kind in ("ok", "message"):
            return Verdict("deviation", flags.names[0])
        return verdict

    def _select(self, args: Any, flags: _Flags) -> Verdict:
        if not self.is_video:
            raise AssertionError(
                E + "You attempted to `select_frames` from **image** not **video**. You should "
                "use `crop_image_normalized` instead for inspecting **image**."
            )
        wanted = args["target_frames"]
        frames = self.items[0]
        if len(wanted) > 8:
            if not isinstance(wanted, list):
                flags.add("frames-not-a-list")  # len() of a string or an object
            raise AssertionError(
                E + f"You have selected {len(wanted)} frames in total. Think again which frames "
                "you need to check in details (no more than 8 frames)"
            )
        if max(wanted) > len(frames):
            raise AssertionError(
                E + f"There are {len(frames)} frames numbered in range [1,{len(frames)}]. "
                f"Your selection `target_frames={wanted}` is out of range."
            )
        picked = []
        for x in wanted:
            index = x - 1
            if _is_bool(x):
                flags.add("bool-index")
            if isinstance(index, int) and index < 0:
                flags.add("wrapped-index")  # Python counts from the end
            picked.append(frames[index])
        bounds = FRAME_BOUNDS[self.bounds]
        added = [resize_to(f, bounds) for f in picked] if bounds else picked
        first = len(self.items)  # "Numbered {len(imagelist)} to {len(imagelist)+m-1}"
        text = (
            f"\nHere are the selected frames (Frame Size: {added[0].width}x{added[0].height}, "
            f"Numbered {first} to {first + len(added) - 1}):"
        )
        return Verdict("ok", images=added, observation=text)

    def _crop(self, args: Any, flags: _Flags) -> Verdict:
        target = args["target_image"]
        if _is_bool(target):
            flags.add("bool-index")
        index = target - 1
        if self.is_video and len(self.items) == 1:
            frames = self.items[0]
            if not index < len(frames):
                raise AssertionError(
                    WRONG_TARGET + "You can only pick an image **from** the video within "
                    f"[1,{len(frames)}], but the current argument `target_image={target}`."
                )
            pool = frames
        elif self.is_video:  # [video, returned, ...]: the list itself, from item 1 on
            if not index >= 1:
                raise AssertionError(
                    WRONG_TARGET + f"You can only pick an image within range [2,{len(self.items)}]"
                    f", but the current argument `target_image={target}`."
                )
            pool = self.items
        else:
            if not index < len(self.items):
                raise AssertionError(
                    WRONG_TARGET + f"You can only pick an image within [1,{len(self.items)}]"
                )
            pool = self.items
        if isinstance(index, int) and index < 0:
            flags.add("wrapped-index")
        image = pool[index]
        box, region = reference_crop(image, args["bbox_2d"], flags)
        out = resize_to(region, CROP_BOUNDS[self.bounds])
        text = f"\nHere is the cropped image (Image Size: {out.width}x{out.height}):"
        return Verdict("ok", images=[out], observation=text, box=box)


def reference_rewards(group: list[dict[str, Any]]) -> list[float]:
    """The shaped reward of one group (the loop after `rets_round1`), per-rollout flag.

    `correct` is the rule reward (1, 0 or -1), `n_calls` num_toolcalls, `final_error` the flag.
    The reference reads the flag at the group-relative index (a bug, docs/method.md §4); this uses each
    rollout's own flag, as intended.
    """
    rapr = sum(g["n_calls"] > 0 for g in group) / len(group)
    out = []
    for g in group:
        r = float(g["correct"])
        if r > 0.5 and g["final_error"]:
            r = 0.0  # a failed operation the model never fixed
        if g["n_calls"] > 0.1:
            spread = 1.5 if g["is_video"] else 2.0
            curiosity = max(0.3 - rapr, 0.0) / spread / rapr * 0.25
            r += curiosity - 0.05 * (g["n_calls"] - 1)
        out.append(r)
    return out


# ================================================================ golden cases of the oracle
def _frames(n: int = 16) -> list[Image.Image]:
    return [Image.new("RGB", (56, 56), (10 * i, 0, 0)) for i in range(1, n + 1)]


def _call(name: str, **arguments: Any) -> str:
    return (
        "ok "
        + TOOL_START
        + "\n"
        + json.dumps({"name": name, "arguments": arguments})
        + "\n"
        + TOOL_END
    )


def test_issue_example_video_numbering_after_a_return():
    ref = ReferenceRollout(frames=_frames())
    got = ref.turn(_call("select_frames", target_frames=[2, 5]))
    assert got.kind == "ok" and got.observation.endswith("Numbered 1 to 2):")
    one = ref.turn(_call("crop_image_normalized", bbox_2d=[0, 0, 0.9, 0.9], target_image=1))
    assert one.kind == "message" and "within range [2,3]" in one.text
    assert one.text.endswith("`target_image=1`.")
    two = ref.turn(_call("crop_image_normalized", bbox_2d=[0, 0, 0.9, 0.9], target_image=2))
    assert two.kind == "ok" and two.images[0].getpixel((3, 3)) == (20, 0, 0)
    three = ref.turn(_call("crop_image_normalized", bbox_2d=[0, 0, 0.9, 0.9], target_image=3))
    assert three.kind == "ok" and three.images[0].getpixel((3, 3)) == (50, 0, 0)


def test_issue_example_wording():
    ref = ReferenceRollout(images=[Image.new("RGB", (300, 300))])
    got = ref.turn(_call("crop_image_normalized", bbox_2d=[0.1, 0.1, 0.5, 0.5], target_image=2))
    assert got.text == (
        "Execution Error: Incorrect `target_image` argument in `crop_image_normalized` operation. "
        "You can only pick an image within [1,1]"
    )
    video = ReferenceRollout(frames=_frames())
    out = video.call(_call("select_frames", target_frames=[3, 40]))
    assert out.text.endswith("Your selection `target_frames=[3, 40]` is out of range.")


def test_boxes_with_a_one_are_pixels_and_quirks_are_flagged():
    image = Image.new("RGB", (1484, 1036))
    box, region = reference_crop(image, [0.5, 0.5, 1.0, 1.0], _Flags())
    assert box == (0, 0, 149, 105) and region.size == (149, 105)
    flags = _Flags()
    reference_crop(image, [0.1, 0.1, 0.6, 0.6, 7], flags)
    assert flags.names == ["bbox-extra-values"]
    ref = ReferenceRollout(images=[image])
    assert (
        ref.call(
            _call("crop_image_normalized", bbox_2d=[0.1, 0.1, 0.5, 0.5], target_image=True)
        ).text
        == "bool-index"
    )
    assert (
        ref.call(_call("crop_image_normalized", bbox_2d=[0.1, 0.1, 0.5, 0.5], target_image=0)).text
        == "wrapped-index"
    )
    assert (
        ref.call(
            _call("crop_image_normalized", bbox_2d=[0.1, 0.1, 0.5, 0.5], target_image=1.0)
        ).kind
        == "crash"
    )


def test_final_error_after_a_failed_call_and_a_limit_stop():
    ref = ReferenceRollout(images=[Image.new("RGB", (300, 300))])
    good = _call("crop_image_normalized", bbox_2d=[0.1, 0.1, 0.5, 0.5], target_image=1)
    bad = _call("crop_image_normalized", bbox_2d=[0.1, 0.1, 0.5, 0.5], target_image=9)
    for text in (good, good, good, bad):
        ref.turn(text)
    assert ref.turn(good).stop and ref.final_error and ref.num_toolcalls == 5
    # the issue's numbers: a correct answer, the other 7 rollouts make no calls
    group = [{"correct": 1, "n_calls": 5, "is_video": False, "final_error": True}]
    group += [{"correct": 0, "n_calls": 0, "is_video": False, "final_error": False}] * 7
    assert math.isclose(reference_rewards(group)[0], -0.025, abs_tol=1e-12)
    unflagged = [dict(group[0], final_error=False), *group[1:]]
    assert math.isclose(reference_rewards(unflagged)[0], 0.975, abs_tol=1e-12)


def test_a_dropped_result_clears_the_flag():
    ref = ReferenceRollout(frames=_frames())
    ref.turn(_call("crop_image_normalized", bbox_2d=[0.1, 0.1, 0.5, 0.5], target_image=99))
    assert ref.temp_error
    ref.turn(_call("select_frames", target_frames=[1, 2, 3, 4, 5, 6, 7, 8]))
    out = ref.turn(_call("select_frames", target_frames=[1, 2, 3, 4, 5, 6, 7, 8]))
    assert out.stop and ref.finished and not ref.final_error  # 1 + 8 + 8 > 16
