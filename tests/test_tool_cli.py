"""`pixelctl tool run`: one JSON object per call, images written, clear errors, exit codes."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from pixelctl.cli.tool import app
from pixelctl.prompt import format_tool_call

runner = CliRunner()


def crop_call(bbox, target=1) -> str:
    return "Zoom. " + format_tool_call(
        "crop_image_normalized", {"bbox_2d": bbox, "target_image": target}
    )


def picture(path, w=2246, h=1582):
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    Image.fromarray(np.stack([x, x, x], -1)).save(path)
    return str(path)


def invoke(*args, stdin=None):
    result = runner.invoke(app, ["run", *args], input=stdin)
    return result.exit_code, json.loads(result.stdout)


def test_compat_crop_writes_the_image_and_reports_the_box(tmp_path):
    image = picture(tmp_path / "a.png")
    code, out = invoke(
        "--image",
        image,
        "--response",
        crop_call([0.5, 0.5, 1.0, 1.0]),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 0
    assert out == {
        "executed": True,
        "name": "crop_image_normalized",
        "arguments": {"bbox_2d": [0.5, 0.5, 1.0, 1.0], "target_image": 1},
        "observation": "\nHere is the cropped image (Image Size: 140x112):",
        "images": [str(tmp_path / "o" / "crop_1.png")],
        "error": None,
        "crop_box": [0, 0, 149, 105],
    }
    assert Image.open(out["images"][0]).size == (140, 112)


def test_strict_mode_and_eval_bounds_change_the_answer(tmp_path):
    image = picture(tmp_path / "a.png")
    code, out = invoke(
        "--image",
        image,
        "--response",
        crop_call([0.5, 0.5, 1.0, 1.0]),
        "--mode",
        "strict",
        "--bounds",
        "eval",
    )
    # eval bounds keep the input at 2240x1568; strict reads the box as normalized.
    assert code == 0 and out["crop_box"] == [896, 627, 2240, 1568] and out["images"] == []
    code, out = invoke(
        "--image", image, "--response", crop_call([100, 80, 400, 300]), "--mode", "strict"
    )
    assert code == 1 and not out["executed"] and "divide x by 1484 and y by 1036" in out["error"]
    assert out["observation"] == f"\nExecution error:\n{out['error']}\n"


def test_frames_from_a_directory_via_stdin(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(16):
        Image.new("RGB", (112, 84), (i * 10, 0, 0)).save(frames / f"{i:02d}.png")
    body = '<tool_call>\n{"name": "select_frames", "arguments": {"target_frames": [2, 9]}}\n</tool_call>\n'
    code, out = invoke(
        "--frames", str(frames), "--response", "-", "--out", str(tmp_path / "o"), stdin=body
    )
    assert code == 0
    assert (
        out["observation"]
        == "\nHere are the selected frames (Frame Size: 112x84, Numbered 1 to 2):"
    )
    assert [Image.open(p).getpixel((0, 0)) for p in out["images"]] == [(10, 0, 0), (80, 0, 0)]


def test_no_call_bad_json_and_bad_inputs(tmp_path):
    image = picture(tmp_path / "a.png", 200, 200)
    code, out = invoke("--image", image, "--response", "The answer is \\boxed{A}.")
    assert code == 1 and out["name"] is None and "does not end with </tool_call>" in out["error"]
    code, out = invoke("--image", image, "--response", '<tool_call>\n{"name": \n</tool_call>')
    assert code == 1 and "not valid JSON" in out["error"]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00\x01garbage")
    code, out = invoke("--image", str(bad), "--response", crop_call([0.1, 0.1, 0.6, 0.6]))
    assert code == 1 and out["error"].startswith("An input image could not be used")
    code, out = invoke(
        "--image", image, "--frames", image, "--response", crop_call([0.1, 0.1, 0.6, 0.6])
    )
    assert code == 1 and "not both" in out["error"]
    code, out = invoke(
        "--image", image, "--response", crop_call([0.1, 0.1, 0.6, 0.6]), "--mode", "loose"
    )
    assert code == 1 and "--mode must be compat or strict" in out["error"]


def test_non_utf8_stdin_is_answered(tmp_path):
    image = picture(tmp_path / "a.png", 200, 200)
    result = runner.invoke(
        app,
        ["run", "--image", image, "--response", "-"],
        input=b"\xff\xfe<tool_call>\n{\xff}\n</tool_call>",
    )
    assert result.exit_code == 1 and "not valid JSON" in json.loads(result.stdout)["error"]


def test_help_ends_with_examples():
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    tail = result.stdout.rstrip().splitlines()[-1].strip()
    assert tail.startswith("</tool_call>' | pixelctl tool run --frames")
    assert "Examples" in result.stdout
