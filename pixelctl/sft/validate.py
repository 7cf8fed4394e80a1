"""The checks an SFT record must pass; each failure is one sentence naming the message and fix.

1. Shape: `message_list` of `{role, content}`; text, image and video items only; no chat markup
   (`<|im_start|>` …) inside text, which would corrupt the turn boundaries of the loss mask.
2. Roles: an optional system turn, then user / assistant alternating, ending with the
   assistant; visuals only in user turns; system and assistant turns are text.
3. Re-execute every call through the executor (the same `Session` rollouts use): the inputs
   must exist and decode; every assistant turn but the last must end with a valid tool call
   (strict JSON, normalized boxes `0 ≤ x1 < x2 ≤ 1`); the next user turn must be the
   observation the executor produces for that call — the same text (so the stated crop size
   matches) and the same number of images, each of which decodes to that size under the train
   pixel bounds — or an execution error when the executor rejects the call. The last turn
   must not call.
4. `error_turns` must index assistant turns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pixelctl.models.qwen import SPECIAL_TOKENS
from pixelctl.sft.records import Record

CROP_RE = re.compile(r"Here is the cropped image \(Image Size: \d+x\d+\):")
FRAMES_RE = re.compile(
    r"Here are the selected frames \(Frame Size: \d+x\d+, Numbered \d+ to \d+\):"
)
ERROR_RE = re.compile(r"Execution error:")


class Invalid(Exception):
    """Why a record is skipped."""


def validate_record(raw: Any, base: Path, settings: Any) -> Record | str:
    """A normalized `Record`, or the reason the record is skipped."""
    try:
        if not isinstance(raw, dict) or not isinstance(raw.get("message_list"), list):
            raise Invalid("no message_list: a record is an object with a message_list array")
        messages = [_message(i, m, base) for i, m in enumerate(raw["message_list"])]
        _check_roles(messages)
        errors = _error_turns(raw.get("error_turns", []), messages)
        sizes = _reexecute(messages, settings)
    except Invalid as exc:
        return str(exc)
    kind = raw.get("kind")
    return Record("", "", messages, errors, str(kind) if kind is not None else None, sizes)


# ----------------------------------------------------------------------------- shape
def _message(i: int, m: Any, base: Path) -> dict[str, Any]:
    if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
        raise Invalid(f"message {i}: role must be system, user or assistant")
    content = m.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise Invalid(f"message {i}: content must be a string or a non-empty list of items")
    return {"role": m["role"], "content": [_item(i, it, base) for it in content]}


def _item(i: int, item: Any, base: Path) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise Invalid(f"message {i}: content items must be objects")
    kind = item.get("type") or next((k for k in ("text", "image", "video") if k in item), None)
    if kind == "text" and isinstance(item.get("text"), str):
        bad = next((t for t in SPECIAL_TOKENS if t in item["text"]), None)
        if bad:
            raise Invalid(f"message {i}: text contains the chat-markup token {bad}; remove it")
        return {"type": "text", "text": item["text"]}
    if kind == "image" and isinstance(item.get("image"), str):
        return {"type": "image", "image": str(base / item["image"])}
    if kind == "video" and isinstance(item.get("video"), list) and item["video"]:
        if not all(isinstance(p, str) for p in item["video"]):
            raise Invalid(f"message {i}: a video is a list of frame image paths")
        return {"type": "video", "video": [str(base / p) for p in item["video"]]}
    if kind == "video":
        raise Invalid(f"message {i}: a video must be a non-empty list of frame image paths")
    raise Invalid(f"message {i}: unsupported content item {_show(item)}")


def _check_roles(messages: list[dict[str, Any]]) -> None:
    roles = [m["role"] for m in messages]
    body = roles[1:] if roles and roles[0] == "system" else roles
    first = len(roles) - len(body)
    expected = ["user" if k % 2 == 0 else "assistant" for k in range(len(body))]
    if len(body) < 2 or body != expected or body[-1] != "assistant":
        raise Invalid(
            f"roles out of order {roles}: expected an optional system turn, then user and "
            "assistant alternating, ending with an assistant turn"
        )
    for i, m in enumerate(messages):
        visual = [it["type"] for it in m["content"] if it["type"] != "text"]
        if visual and m["role"] != "user":
            raise Invalid(f"message {i}: a {m['role']} turn cannot hold images or videos")
        if "video" in visual and i != first:
            raise Invalid(f"message {i}: only the first user turn can hold a video")
        if "video" in visual and (len(visual) > 1):
            raise Invalid(f"message {i}: a video cannot be combined with other images or videos")


def _error_turns(value: Any, messages: list[dict[str, Any]]) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise Invalid("error_turns must be a list of message indices")
    for v in value:
        if not (0 <= v < len(messages) and messages[v]["role"] == "assistant"):
            raise Invalid(f"error_turns: {v} is not the index of an assistant message")
    return tuple(value)


# ----------------------------------------------------------------------------- re-execute
def _text(m: dict[str, Any]) -> str:
    return "".join(it["text"] for it in m["content"] if it["type"] == "text")


def _reexecute(messages: list[dict[str, Any]], settings: Any) -> list[tuple[int, int]]:
    """Run every call through the executor; return the (w, h) of each still image, in order."""
    from pixelctl.executor import ImageLoadError, Session

    first = 1 if messages[0]["role"] == "system" else 0
    items = messages[first]["content"]
    stills = [it["image"] for it in items if it["type"] == "image"]
    video = next((it["video"] for it in items if it["type"] == "video"), None)
    session = Session(images=stills, video=video, settings=settings)
    for it in items:
        if it["type"] != "text":
            it["kind"] = "input" if it["type"] == "image" else "video"
    try:
        sizes = [im.size for im in session.images]
    except ImageLoadError as exc:
        raise Invalid(f"message {first}: input image unusable: {exc}") from None
    if video is not None:
        sizes = []  # frames are a video, not stills; the collator sizes them itself
    last = len(messages) - 1
    for k in range(first + 1, last, 2):
        sizes += _step(k, messages, session, settings)
    if _parse(_text(messages[last]), settings).ends_with_call:
        raise Invalid(
            f"message {last}: the last assistant turn ends with a tool call, not an answer"
        )
    return sizes


def _parse(text: str, settings: Any) -> Any:
    from pixelctl.executor import parse_tool_call

    return parse_tool_call(text, max_chars=settings.max_call_chars)


def _step(k: int, messages: list[dict[str, Any]], session: Any, settings: Any) -> list:
    parsed = _parse(_text(messages[k]), settings)
    if not parsed.ends_with_call:
        raise Invalid(
            f"message {k}: an assistant turn followed by an observation must end with a <tool_call>"
        )
    if parsed.error:
        raise Invalid(f"message {k}: invalid tool call: {parsed.error.splitlines()[0]}")
    _check_box(k, parsed.call)
    obs = session.execute(parsed.call)
    if obs.stop:
        raise Invalid(f"message {k}: over the executor's limits: {obs.error}")
    return _compare(k + 1, messages[k + 1], obs, settings)


def _check_box(k: int, call: Any) -> None:
    from pixelctl.executor import CROP_TOOL

    if call.name != CROP_TOOL:
        return
    box = call.arguments.get("bbox_2d")
    ok = (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
    )
    if not ok or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
        raise Invalid(
            f"message {k}: bbox_2d {_show(box)} is not a normalized box "
            "[x1, y1, x2, y2] with 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1"
        )


def _compare(i: int, m: dict[str, Any], obs: Any, settings: Any) -> list[tuple[int, int]]:
    text = _text(m)
    images = [it for it in m["content"] if it["type"] == "image"]
    if not obs.ok:
        if ERROR_RE.search(text) and not images:
            return []
        raise Invalid(
            f"message {i}: the executor rejects the call ({_first(obs.error)}) but "
            "the record shows no execution error"
        )
    if text.strip() != obs.text.strip():
        raise Invalid(
            f"message {i}: observation text {_show(text.strip())} differs from the "
            f"executor's {_show(obs.text.strip())}"
        )
    if len(images) != len(obs.images):
        raise Invalid(
            f"message {i}: {len(images)} observation images, the executor returns {len(obs.images)}"
        )
    kind = "crop" if CROP_RE.search(text) else "frame"
    return [
        _observed_size(i, it, kind, want.size, settings)
        for it, want in zip(images, obs.images, strict=True)
    ]


def _observed_size(i: int, item: dict, kind: str, want: tuple[int, int], settings: Any) -> tuple:
    from pixelctl.executor import ImageLoadError
    from pixelctl.executor.images import prepare

    item["kind"] = kind
    lo, hi = bounds_for(kind, settings.bounds)
    try:
        got = prepare(
            item["image"],
            lo,
            hi,
            cap=settings.max_input_pixels,
            data_root=settings.data_root,
            fast=settings.fast_decode,
        ).size
    except ImageLoadError as exc:
        raise Invalid(f"message {i}: observation image unusable: {exc}") from None
    if got != want:
        raise Invalid(
            f"message {i}: observation image {Path(item['image']).name} is "
            f"{got[0]}x{got[1]} under the train {kind} bounds, the executor's is "
            f"{want[0]}x{want[1]}"
        )
    return got


def bounds_for(kind: str, bounds: Any) -> tuple[int, int]:
    """The (min, max) pixels of an image of `kind`: input, crop, frame or video."""
    prefix = {"input": "image", "crop": "crop", "frame": "frame", "video": "video"}[kind]
    return getattr(bounds, f"{prefix}_min_pixels"), getattr(bounds, f"{prefix}_max_pixels")


def _first(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text and text.strip() else ""


def _show(value: Any, limit: int = 80) -> str:
    s = repr(value)
    return s if len(s) <= limit else s[: limit - 1] + "…"
