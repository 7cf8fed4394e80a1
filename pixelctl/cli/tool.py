"""`pixelctl tool run`: execute one tool call on real images, exactly as a rollout would.

For researchers settling box and frame-index conventions: give the inputs and the model's
response, get one JSON object with the observation text, the crop box in pixels of the target
image and the paths of the returned images.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Run the pixel-space tools (crop_image_normalized, select_frames) outside a rollout.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

EXAMPLES = (
    "Exit status: 0 when the call executed, 1 when it did not (the JSON says why). "
    "One trailing newline on stdin (-) is dropped."
    """

[bold]Examples[/bold]

  $ pixelctl tool run --image photo.jpg --out crops --response '<tool_call>
  {"name": "crop_image_normalized",
   "arguments": {"bbox_2d": [0.5, 0.5, 1.0, 1.0], "target_image": 1}}
  </tool_call>'

  $ pixelctl tool run --image photo.jpg --mode strict --response '<tool_call>
  {"name": "crop_image_normalized",
   "arguments": {"bbox_2d": [100, 80, 400, 300], "target_image": 1}}
  </tool_call>'

  $ echo '<tool_call>
  {"name": "select_frames", "arguments": {"target_frames": [1, 5, 9]}}
  </tool_call>' | pixelctl tool run --frames vid/ --bounds eval --response -"""
)


@app.callback()
def tool() -> None:
    """Run the pixel-space tools (crop_image_normalized, select_frames) outside a rollout."""


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def _read_response(response: str) -> str:
    """The response text; `-` reads stdin as bytes and replaces invalid UTF-8."""
    if response != "-":
        return response
    text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    return text[:-1] if text.endswith("\n") else text


def _expand_frames(frames: list[Path]) -> list[Path]:
    """A single directory stands for its image files in name order."""
    if len(frames) == 1 and frames[0].is_dir():
        return sorted(p for p in frames[0].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return frames


def _write_images(images: list[Any], out: Path | None, name: str | None) -> list[str]:
    if out is None or not images:
        return []
    out.mkdir(parents=True, exist_ok=True)
    from pixelctl.executor import CROP_TOOL

    stem = "crop" if name == CROP_TOOL else "frame"
    paths = []
    for i, image in enumerate(images, start=1):
        path = out / f"{stem}_{i}.png"  # PNG: what the model would see, without re-encoding loss
        image.save(path)
        paths.append(str(path))
    return paths


def _result(obs: Any | None, error: str | None, paths: list[str], call: Any = None) -> dict:
    return {
        "executed": bool(obs is not None and obs.ok),
        "name": obs.name if obs is not None else getattr(call, "name", None),
        "arguments": obs.arguments if obs is not None else getattr(call, "arguments", None),
        "observation": obs.text if obs is not None else "",
        "images": paths,
        "error": error,
        "crop_box": list(obs.crop_box) if obs is not None and obs.crop_box else None,
    }


@app.command("run", epilog=EXAMPLES)
def run(
    response: Annotated[
        str,
        typer.Option(
            "--response", help="The assistant turn ending with a tool call, or - (stdin)."
        ),
    ],
    image: Annotated[
        list[Path] | None,
        typer.Option("--image", help="An input image; repeat for several (target_image order)."),
    ] = None,
    frames: Annotated[
        list[Path] | None,
        typer.Option(
            "--frames", help="A video frame; repeat in order, or one directory of frames."
        ),
    ] = None,
    mode: Annotated[str, typer.Option(help="Box mode: compat (reference) or strict.")] = "compat",
    bounds: Annotated[str, typer.Option(help="Pixel bounds preset: train or eval.")] = "train",
    out: Annotated[Path | None, typer.Option(help="Write returned images here as PNG.")] = None,
    data_root: Annotated[
        Path | None, typer.Option(help="Refuse input paths outside this directory.")
    ] = None,
) -> None:
    """Execute the tool call in --response on the given images or frames; print one JSON object."""
    from pixelctl.executor import ExecutorSettings, Session

    try:
        if mode not in ("compat", "strict") or bounds not in ("train", "eval"):
            raise ValueError("--mode must be compat or strict and --bounds train or eval")
        image, frames = image or [], frames or []
        if image and frames:
            raise ValueError("give --image or --frames, not both")
        if not image and not frames:
            raise ValueError("give at least one --image or --frames")
        settings = ExecutorSettings.preset(bounds, box_mode=mode, data_root=data_root)  # type: ignore[arg-type]
        video = _expand_frames(frames) if frames else None
        session = Session(images=image, video=video, settings=settings)
        obs = session.execute_text(_read_response(response))
    except (ValueError, OSError) as exc:
        typer.echo(json.dumps(_result(None, str(exc), [])))
        raise typer.Exit(1) from exc
    if obs is None:
        error = "the response does not end with </tool_call>: a rollout would end here"
        typer.echo(json.dumps(_result(None, error, [])))
        raise typer.Exit(1)
    try:
        paths = _write_images(obs.images, out, obs.name)
    except OSError as exc:
        typer.echo(json.dumps(_result(obs, f"could not write images: {exc}", [])))
        raise typer.Exit(1) from exc
    result = _result(obs, obs.error, paths)
    why = _why_too_small(obs, session, settings)
    if why:
        result["why"] = why  # for you; the model sees the reference's own words only
    typer.echo(json.dumps(result, ensure_ascii=False))
    if not obs.ok:
        raise typer.Exit(1)


def _why_too_small(obs: Any, session: Any, settings: Any) -> str | None:
    """compat keeps the reference's bare `Cropped image is too small: WxH`; say why, for the user."""
    from pixelctl.executor.geometry import normalized_box, parse_bbox, pixel_box

    if settings.box_mode != "compat" or not (obs.error or "").startswith("Cropped image is too"):
        return None
    raw = (obs.arguments or {}).get("bbox_2d")
    try:
        target = session.input_image(int((obs.arguments or {}).get("target_image", 1)))
        box = parse_bbox(raw)
        norm = normalized_box(raw, box, target.width, target.height, "compat", settings.pad)
        left, upper, right, lower = pixel_box(raw, norm, target.width, target.height)
    except Exception:  # the explanation is a courtesy: never fail the command over it
        return None
    reading = (
        "fractions of the image (every value is below 1)"
        if all(v < 1 for v in box)
        else "pixel coordinates (a value is 1 or more)"
    )
    outside = any(v > lim for v, lim in zip(box, (target.width, target.height) * 2, strict=True))
    where = (
        f"it lies outside the {target.width}x{target.height} image, so clipping to the image "
        f"leaves {right - left}x{lower - upper} px"
        if outside
        else f"after {settings.pad:g} padding and clipping to the {target.width}x{target.height} "
        f"image it is {right - left}x{lower - upper} px"
    )
    return (
        f"compat reads bbox_2d {list(raw)} as {reading}; {where}; both sides must be larger "
        f"than {settings.min_crop_side} px. bbox_2d takes fractions in [0, 1] of the image."
    )
