"""Builders for SFT test data: small PIL scenes, records made by running the real executor.

Observations are produced by `pixelctl.executor.Session` and saved next to the record file, the
way synth writes them, so every builder record is valid by construction; tests then break one
thing at a time. (No tests here: the other test_sft_* files import these.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from pixelctl.executor import ExecutorSettings, PixelBounds, Session

SYSTEM = "You are a helpful assistant."
PX = 28 * 28
# The tiny recipe's train bounds: 4..64 visual tokens, cheap on CPU.
BOUNDS = PixelBounds(
    image_min_pixels=4 * PX,
    image_max_pixels=64 * PX,
    crop_min_pixels=4 * PX,
    crop_max_pixels=64 * PX,
    frame_min_pixels=4 * PX,
    frame_max_pixels=16 * PX,
    video_min_pixels=4 * PX,
    video_max_pixels=16 * PX,
)
SETTINGS = ExecutorSettings(box_mode="strict", bounds=BOUNDS)
# Recipe overrides that give recipes/tiny_cpu.yaml these train bounds, so records built here
# re-execute identically through a recipe's executor (validation compares crop sizes exactly).
TINY_RECIPE_BOUNDS = [
    f"executor.bounds.train.{k}={getattr(BOUNDS, k)}"
    for k in (
        "image_min_pixels",
        "image_max_pixels",
        "crop_min_pixels",
        "crop_max_pixels",
        "frame_min_pixels",
        "frame_max_pixels",
        "video_min_pixels",
        "video_max_pixels",
    )
]
GOOD_BOX = [0.5, 0.5, 0.9, 0.9]
BAD_BOX = [0.0, 0.0, 0.3, 0.3]


def scene(path: Path, seed: int = 0, size: tuple[int, int] = (224, 224)) -> str:
    """A white canvas with a coloured square in the lower right quadrant."""
    im = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(im)
    w, h = size
    draw.rectangle([w * 0.6, h * 0.6, w * 0.8, h * 0.8], fill=(40 * seed % 255, 120, 200))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path.name if path.parent.name != "images" else f"images/{path.name}"


def call(box: list[float], target: int = 1) -> str:
    args = {"bbox_2d": box, "target_image": target}
    return (
        "<tool_call>\n"
        + json.dumps({"name": "crop_image_normalized", "arguments": args})
        + ("\n</tool_call>")
    )


def text(role: str, value: str) -> dict[str, Any]:
    return {"role": role, "content": [{"type": "text", "text": value}]}


def build(
    folder: Path,
    name: str,
    turns: list[str],
    *,
    error_turns: list[int] | None = None,
    kind: str = "single_pass",
    seed: int = 0,
) -> dict[str, Any]:
    """A record: system, user (image + question), then the assistant `turns`; each turn but the
    last carries a call whose observation the executor computes and we save as a PNG."""
    image = scene(folder / "images" / f"{name}.png", seed)
    session = Session(images=[str(folder / image)], settings=SETTINGS)
    messages = [
        text("system", SYSTEM),
        {
            "role": "user",
            "content": [
                {"type": "image", "image": image},
                {"type": "text", "text": "What colour is the square?"},
            ],
        },
    ]
    for k, turn in enumerate(turns):
        messages.append(text("assistant", turn))
        if k == len(turns) - 1:
            break
        obs = session.execute_text(turn)
        content: list[dict[str, Any]] = [{"type": "text", "text": obs.text}]
        for j, im in enumerate(obs.images):
            rel = f"images/{name}_obs{k}_{j}.png"
            im.save(folder / rel)
            content.append({"type": "image", "image": rel})
        messages.append({"role": "user", "content": content})
    record = {"id": name, "kind": kind, "message_list": messages, "answer": "blue"}
    if error_turns is not None:
        record["error_turns"] = error_turns
    return record


def single_pass(folder: Path, name: str = "single") -> dict[str, Any]:
    return build(
        folder, name, [f"Let me look closer. {call(GOOD_BOX)}", "The square is blue. \\boxed{blue}"]
    )


def self_correction(folder: Path, name: str = "selfcorr") -> dict[str, Any]:
    """[sys, user, A_err, obs, A_fix, obs, A_answer]: message 2 is the inserted error."""
    return build(
        folder,
        name,
        [
            f"Zoom top left. {call(BAD_BOX)}",
            f"Nothing there; try lower right. {call(GOOD_BOX)}",
            "Blue. \\boxed{blue}",
        ],
        error_turns=[2],
        kind="self_correction",
    )


def text_only(folder: Path, name: str = "textonly") -> dict[str, Any]:
    return build(folder, name, ["It is blue. \\boxed{blue}"], kind="text_only")


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def video(folder: Path, name: str = "video", n_frames: int = 4) -> dict[str, Any]:
    """A video record: frames in the first user turn, one select_frames call, the answer."""
    frames = [
        scene(folder / "images" / f"{name}_f{i}.png", seed=i, size=(112, 84))
        for i in range(n_frames)
    ]
    session = Session(video=[str(folder / f) for f in frames], settings=SETTINGS)
    turn = (
        "Let me pick frames. <tool_call>\n"
        + json.dumps({"name": "select_frames", "arguments": {"target_frames": [1, 3]}})
        + "\n</tool_call>"
    )
    obs = session.execute_text(turn)
    content: list[dict[str, Any]] = [{"type": "text", "text": obs.text}]
    for j, im in enumerate(obs.images):
        rel = f"images/{name}_sel{j}.png"
        im.save(folder / rel)
        content.append({"type": "image", "image": rel})
    messages = [
        text("system", SYSTEM),
        {
            "role": "user",
            "content": [
                {"type": "video", "video": frames},
                {"type": "text", "text": "What changes?"},
            ],
        },
        text("assistant", turn),
        {"role": "user", "content": content},
        text("assistant", "The colour. \\boxed{colour}"),
    ]
    return {"id": name, "kind": "single_pass", "message_list": messages, "answer": "colour"}
