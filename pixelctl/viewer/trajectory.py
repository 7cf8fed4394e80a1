"""One conversation, in any stage's format, as turns with pictures and the boxes the model asked for.

Every stage stores Qwen messages with images as paths; they differ in where the paths point and
in whether the tool calls were recorded (RL samples and eval records carry `calls` with the
executor's `crop_box`; synth and SFT records only have the `<tool_call>` text). `build` walks the
messages once, keeps the conversation's image numbering as the executor does (docs/executor.md:
inputs then returned images; for a video the frames, and in `compat` mode only the returned
images once there are any) and attaches each crop request to the picture it targeted.

Box rule: the model's `bbox_2d` when the executor read it as normalized (`compat`: all four
values < 1; `strict`: all in [0, 1]); otherwise the executor's pixel `crop_box` divided by the
size of the image it cut from (the fitted image, which `target_size` supplies).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelctl.executor import CROP_TOOL
from pixelctl.executor.parse import parse_tool_call

ERROR_PREFIX = "Execution error"
NBox = tuple[float, float, float, float]


@dataclass
class Box:
    box: NBox  # normalized [0, 1] of the picture it is drawn on
    label: str  # the call's number in the conversation
    ok: bool


@dataclass
class Picture:
    path: Path | None  # None: the stored path does not resolve to a file
    stored: str  # the path as the record wrote it (shown when missing)
    boxes: list[Box] = field(default_factory=list)
    fitted: Path | None = None  # the executor's copy of an input, when the run kept one


@dataclass
class Call:
    name: str | None
    arguments: Any
    ok: bool
    error: str | None = None
    crop_box: Sequence[int] | None = None


@dataclass
class Turn:
    role: str
    text: str
    pictures: list[Picture] = field(default_factory=list)
    call: Call | None = None
    inputs: bool = False  # the first user turn: its pictures are the originals
    video: bool = False  # the pictures are a video's frames
    trained: bool | None = None  # SFT: whether the loss mask trains this turn


@dataclass
class Trajectory:
    title: str
    turns: list[Turn]
    facts: list[tuple[str, str]] = field(default_factory=list)
    verdict: str = ""  # "correct", "wrong", "partial", "error" or ""
    split: dict[str, float] | None = None
    anchor: str = ""


def is_normalized(box: Sequence[Any], mode: str) -> bool:
    """Whether the executor read `box` as fractions of the image (docs/executor.md table)."""
    if len(box) != 4 or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in box
    ):
        return False
    if mode == "strict":
        return all(0.0 <= v <= 1.0 for v in box)
    return all(v < 1 for v in box)


def resolve_target(
    target: Any, n_inputs: int, n_returned: int, *, is_video: bool, mode: str
) -> tuple[str, int] | None:
    """("input", i) or ("returned", j), 0-based, for a 1-based `target_image`; None if invalid."""
    if not isinstance(target, int) or isinstance(target, bool) or target < 1:
        return None
    if is_video and mode == "compat" and n_returned:
        return ("returned", target - 1) if target <= n_returned else None
    if target <= n_inputs:
        return ("input", target - 1)
    j = target - n_inputs - 1
    return ("returned", j) if j < n_returned else None


def normalized_box(call: Call, mode: str, size: tuple[int, int] | None) -> NBox | None:
    """The box to draw, in [0, 1] of the target image, or None when it cannot be known."""
    args = call.arguments if isinstance(call.arguments, dict) else {}
    raw = args.get("bbox_2d")
    if isinstance(raw, list) and is_normalized(raw, mode):
        x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in raw)
        return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None
    if call.crop_box and size and size[0] > 0 and size[1] > 0:
        left, upper, right, lower = call.crop_box
        w, h = size
        return (left / w, upper / h, right / w, lower / h)
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        i.get("text", "") for i in content or [] if isinstance(i, dict) and i.get("type") == "text"
    )


def _items(content: Any, kind: str) -> list[Any]:
    if not isinstance(content, list):
        return []
    return [i for i in content if isinstance(i, dict) and i.get("type") == kind]


def _parsed_call(text: str, next_text: str | None) -> Call | None:
    """A call read back from the turn's text (synth, SFT); failed if the observation is an error."""
    parsed = parse_tool_call(text)
    if not parsed.ends_with_call:
        return None
    error = parsed.error
    if next_text is not None and next_text.strip().startswith(ERROR_PREFIX):
        error = next_text.strip()[len(ERROR_PREFIX) :].strip(":\n ") or "error"
    name = parsed.call.name if parsed.call else None
    args = parsed.call.arguments if parsed.call else None
    return Call(name, args, ok=error is None and next_text is not None, error=error)


def _recorded_calls(calls: Sequence[dict[str, Any]]) -> dict[int, Call]:
    """Recorded calls by their 1-based assistant turn (in order when `turn` is missing)."""
    out = {}
    for k, c in enumerate(calls, start=1):
        turn = c.get("turn") if isinstance(c.get("turn"), int) else k
        out[turn] = Call(
            c.get("name"), c.get("arguments"), bool(c.get("ok")), c.get("error"), c.get("crop_box")
        )
    return out


class _Walk:
    """The numbering state while walking a conversation (inputs, returned images, calls)."""

    def __init__(self, mode: str, target_size: Callable[[Picture], tuple[int, int] | None]):
        self.mode, self.target_size = mode, target_size
        self.inputs: list[Picture] = []
        self.returned: list[Picture] = []
        self.is_video = False
        self.n_calls = 0

    def attach(self, call: Call) -> None:
        """Draw a successful crop's box on the picture it targeted."""
        args = call.arguments if isinstance(call.arguments, dict) else {}
        where = resolve_target(
            args.get("target_image"),
            len(self.inputs),
            len(self.returned),
            is_video=self.is_video,
            mode=self.mode,
        )
        if where is None:
            return
        pic = self.inputs[where[1]] if where[0] == "input" else self.returned[where[1]]
        box = normalized_box(call, self.mode, self.target_size(pic))
        if box is not None:
            pic.boxes.append(Box(box, str(self.n_calls), call.ok))


def build(
    messages: Sequence[dict[str, Any]],
    resolve: Callable[[str], Path | None],
    *,
    calls: Sequence[dict[str, Any]] | None = None,
    originals: Sequence[str] = (),
    mode: str = "strict",
    target_size: Callable[[Picture], tuple[int, int] | None] = lambda p: None,
    title: str = "",
) -> Trajectory:
    """Turns with pictures; crop boxes attached to the picture each call targeted."""
    recorded = _recorded_calls(calls) if calls is not None else None
    walk, turns, n_assistant = _Walk(mode, target_size), [], 0
    for i, m in enumerate(messages):
        role, content = str(m.get("role", "?")), m.get("content")
        turn = Turn(role, _text(content))
        if role == "user" and not any(t.role == "user" for t in turns):
            walk.inputs = _inputs(content, resolve, originals)
            walk.is_video = bool(_items(content, "video"))
            turn.pictures, turn.inputs, turn.video = walk.inputs, True, walk.is_video
        elif role == "user":
            turn.pictures = [
                _picture(str(x.get("image", "")), resolve) for x in _items(content, "image")
            ]
        elif role == "assistant":
            n_assistant += 1
            nxt = messages[i + 1] if i + 1 < len(messages) else None
            next_text = _text(nxt.get("content")) if nxt and nxt.get("role") == "user" else None
            if recorded is not None:
                turn.call = recorded.get(n_assistant)
            else:
                turn.call = _parsed_call(turn.text, next_text)
            if turn.call is not None:
                walk.n_calls += 1
                if turn.call.ok and turn.call.name == CROP_TOOL:
                    walk.attach(turn.call)
        turns.append(turn)
        if role == "user" and not turn.inputs:
            walk.returned.extend(turn.pictures)
    return Trajectory(title=title, turns=turns)


def _picture(stored: str, resolve: Callable[[str], Path | None]) -> Picture:
    return Picture(resolve(stored) if stored else None, stored)


def _inputs(
    content: Any, resolve: Callable[[str], Path | None], originals: Sequence[str]
) -> list[Picture]:
    """The first user turn's images or video frames; the original file when it still exists."""
    stored = [str(i.get("image", "")) for i in _items(content, "image")]
    for v in _items(content, "video"):
        frames = v.get("video")
        stored += [str(f) for f in frames] if isinstance(frames, list) else []
    pics = []
    for k, s in enumerate(stored):
        copy = resolve(s) if s else None
        original = resolve(originals[k]) if k < len(originals) and originals[k] else None
        pics.append(Picture(original or copy, originals[k] if original else s, fitted=copy))
    return pics
