"""Seed readers and validation: annotated inputs in, checked `Seed`s and reasoned rejects out.

Three JSONL layouts (docs/seeds.md): `image` (SA-1B style: an image, object boxes, a question),
`web` (FineWeb style: a page or infographic, text-region boxes) and `video` (STARQA style: a
folder of frames and key-frame indices). Every seed is checked before any work is spent on it
(files exist and decode, boxes lie inside the image, key frames exist), and every failure becomes
a reject with a reason a person can act on, never a silent skip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from pixelctl.rundir import jsonl_rows

BOX_FORMATS = ("xywh", "xywh_norm")  # pixels (SA-1B's own format) or fractions of the size
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
BOX_SLACK_PX = 1.0  # annotation tools round; a box 1 px past the edge is still inside


class SeedError(ValueError):
    """Why one seed cannot be used; the message goes to rejects.jsonl as the reason."""


@dataclass(frozen=True)
class Region:
    """One annotated box, normalized to [0,1] as (x1, y1, x2, y2), with its label or text."""

    box: tuple[float, float, float, float]
    label: str = ""
    text: str = ""


@dataclass(frozen=True)
class Seed:
    id: str
    source: str  # "image" | "web" | "video" | "procedural"
    question: str
    answers: tuple[str, ...]
    image: Path | None = None
    frames: tuple[Path, ...] = ()
    regions: tuple[Region, ...] = ()  # the cue: what the question is about
    key_frames: tuple[int, ...] = ()  # 0-based indices into `frames`
    options: tuple[str, ...] = ()
    easy: bool = False  # readable without zooming: preferred for text-only trajectories
    caption: str = ""
    size: tuple[int, int] | None = None  # (width, height) of the image or the first frame
    file: str = ""
    line: int = 0
    raw_boxes: tuple[tuple[float, ...], ...] = field(default=(), repr=False)
    box_format: str = "xywh"

    @property
    def answer(self) -> str:
        return self.answers[0]

    @property
    def is_video(self) -> bool:
        return bool(self.frames)

    @property
    def has_cue(self) -> bool:
        return bool(self.key_frames) if self.is_video else bool(self.regions)

    def cue_box(self) -> tuple[float, float, float, float]:
        """The union of the cue boxes: the region one crop must show to answer."""
        xs1, ys1, xs2, ys2 = zip(*(r.box for r in self.regions), strict=True)
        return (min(xs1), min(ys1), max(xs2), max(ys2))


@dataclass(frozen=True)
class SynthReject:
    """A seed or trajectory synth leaves out: a line of synth's rejects.jsonl (`stage` says
    whether a resume retries it; the shared `pixelctl.rejects.Reject` has no such field)."""

    id: str
    file: str
    line: int
    reason: str
    stage: str = "seed"  # "seed" (permanent) | "reexecute" | "write" | "sample" (retried on resume)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # {id, file, line, reason, stage}: synth's rejects.jsonl line


# ----------------------------------------------------------------------------- parsing
def _need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in obj:
        raise SeedError(f"missing field '{key}'")
    if not isinstance(obj[key], kind):
        raise SeedError(f"field '{key}' has the wrong type ({type(obj[key]).__name__})")
    return obj[key]


def _answers(obj: dict[str, Any]) -> tuple[str, ...]:
    ans = _need(obj, "answer", (str, int, float, list))
    items = ans if isinstance(ans, list) else [ans]
    out = tuple(str(a).strip() for a in items if str(a).strip())
    if not out:
        raise SeedError("field 'answer' is empty")
    return out


def _resolve(base: Path, p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else base / path


def _natural_key(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _frames(obj: dict[str, Any], base: Path) -> tuple[Path, ...]:
    if "frames" in obj:
        return tuple(_resolve(base, str(f)) for f in _need(obj, "frames", list))
    folder = _resolve(base, str(_need(obj, "frames_dir", str)))
    if not folder.is_dir():
        raise SeedError(f"frames folder not found: {folder}")
    files = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES]
    if not files:
        raise SeedError(f"frames folder has no images: {folder}")
    return tuple(sorted(files, key=_natural_key))


def _raw_boxes(obj: dict[str, Any], key: str) -> tuple[list, list[Region]]:
    boxes, regions = [], []
    for i, item in enumerate(obj.get(key) or []):
        if not isinstance(item, dict) or not isinstance(item.get("bbox"), list):
            raise SeedError(f"{key}[{i}] needs a 'bbox' list [x, y, w, h]")
        box = item["bbox"]
        if len(box) != 4 or not all(isinstance(v, (int, float)) for v in box):
            raise SeedError(f"{key}[{i}].bbox must be four numbers [x, y, w, h], got {box}")
        boxes.append(tuple(float(v) for v in box))
        regions.append(
            Region((0.0, 0.0, 0.0, 0.0), str(item.get("label", "")), str(item.get("text", "")))
        )
    return boxes, regions


def parse_seed(obj: Any, kind: str, base: Path, file: str, line: int) -> Seed:
    """One JSONL object → an unvalidated Seed (boxes still in the file's format)."""
    if not isinstance(obj, dict):
        raise SeedError("a seed line must be a JSON object")
    question = _need(obj, "question", str).strip()
    if not question:
        raise SeedError("field 'question' is empty")
    common = {
        "id": str(obj.get("id") or f"{Path(file).stem}-{line}"),
        "source": kind,
        "question": question,
        "answers": _answers(obj),
        "file": file,
        "line": line,
        "easy": bool(obj.get("easy", False)),
        "caption": str(obj.get("caption", "")),
        "options": tuple(str(o) for o in obj.get("options") or ()),
    }
    if kind == "video":
        key_frames = obj.get("key_frames", [])
        if not isinstance(key_frames, list) or not all(isinstance(k, int) for k in key_frames):
            raise SeedError("field 'key_frames' must be a list of integers (0-based)")
        return Seed(**common, frames=_frames(obj, base), key_frames=tuple(key_frames))
    fmt = str(obj.get("box_format", "xywh"))
    if fmt not in BOX_FORMATS:
        raise SeedError(f"box_format {fmt!r} is not one of {', '.join(BOX_FORMATS)}")
    boxes, regions = _raw_boxes(obj, "regions" if kind == "web" else "boxes")
    return Seed(
        **common,
        image=_resolve(base, str(_need(obj, "image", str))),
        regions=tuple(regions),
        raw_boxes=tuple(boxes),
        box_format=fmt,
    )


def read_seed_file(path: Path, kind: str) -> tuple[list[Seed], list[SynthReject]]:
    """Parse a seed JSONL file; unparsable lines become rejects, the rest unvalidated seeds."""
    seeds: list[Seed] = []
    rejects: list[SynthReject] = []
    base = path.parent
    if not path.is_file():
        return [], [SynthReject(f"{path.stem}-*", str(path), 0, f"seed file not found: {path}")]
    for n, row in jsonl_rows(path):
        if isinstance(row, json.JSONDecodeError):
            rejects.append(SynthReject(f"{path.stem}-{n}", str(path), n, f"not valid JSON: {row}"))
            continue
        try:
            seeds.append(parse_seed(row, kind, base, str(path), n))
        except SeedError as exc:
            rejects.append(SynthReject(f"{path.stem}-{n}", str(path), n, str(exc)))
    return seeds, rejects


# ----------------------------------------------------------------------------- validation
def decode_size(path: Path, max_pixels: int) -> tuple[int, int]:
    """(width, height) of an image that exists and fully decodes; SeedError otherwise."""
    if not path.is_file():
        raise SeedError(f"file not found: {path}")
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise SeedError(f"image too large: {w}x{h} px is over {max_pixels} px ({path})")
            im.draft("RGB", (max(1, w // 8), max(1, h // 8)))  # JPEG: cheap but full decode
            im.load()
    except SeedError:
        raise
    except Exception as exc:  # PIL raises many types for broken files
        raise SeedError(f"does not decode: {path} ({type(exc).__name__}: {exc})") from exc
    return w, h


def normalize_box(box: tuple[float, ...], fmt: str, w: int, h: int, i: int) -> tuple[float, ...]:
    """[x, y, w, h] in pixels or fractions → normalized (x1, y1, x2, y2) inside the image."""
    x, y, bw, bh = box
    if bw <= 0 or bh <= 0:
        raise SeedError(f"box {i} is empty: {list(box)} (width and height must be > 0)")
    if fmt == "xywh_norm":
        x, y, bw, bh = x * w, y * h, bw * w, bh * h
    if (
        x < -BOX_SLACK_PX
        or y < -BOX_SLACK_PX
        or x + bw > w + BOX_SLACK_PX
        or y + bh > h + BOX_SLACK_PX
    ):
        raise SeedError(f"box {i} {list(box)} ({fmt}) lies outside the {w}x{h} image")
    x1, y1 = max(0.0, x) / w, max(0.0, y) / h
    return (x1, y1, min(float(w), x + bw) / w, min(float(h), y + bh) / h)


def validate_seed(seed: Seed, max_pixels: int, max_frames: int) -> Seed:
    """Check files and boxes; return the seed with normalized regions and its size."""
    if seed.is_video:
        sizes = [decode_size(p, max_pixels) for p in seed.frames]
        n = len(seed.frames)
        bad = [k for k in seed.key_frames if not 0 <= k < n]
        if bad:
            raise SeedError(f"key frames {bad} out of range: the video has {n} frames (0-based)")
        if len(set(seed.key_frames)) > max_frames:
            raise SeedError(
                f"{len(seed.key_frames)} key frames; one select_frames call takes "
                f"at most {max_frames}"
            )
        return replace(seed, size=sizes[0])
    assert seed.image is not None
    w, h = decode_size(seed.image, max_pixels)
    regions = tuple(
        replace(r, box=normalize_box(b, seed.box_format, w, h, i))
        for i, (r, b) in enumerate(zip(seed.regions, seed.raw_boxes, strict=True))
    )
    return replace(seed, regions=regions, size=(w, h), raw_boxes=())


def validate_all(
    seeds: Iterable[Seed], max_pixels: int, max_frames: int, workers: int = 4
) -> tuple[list[Seed], list[SynthReject]]:
    """Validate in parallel (decoding is I/O and C code); keep input order; reject duplicates."""
    seeds = list(seeds)

    def check(seed: Seed) -> Seed | SynthReject:
        try:
            return validate_seed(seed, max_pixels, max_frames)
        except SeedError as exc:
            return SynthReject(seed.id, seed.file, seed.line, str(exc))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(check, seeds))
    good: list[Seed] = []
    rejects: list[SynthReject] = []
    first: dict[str, Seed] = {}
    for res in results:
        if isinstance(res, SynthReject):
            rejects.append(res)
        elif res.id in first:
            where = f"{first[res.id].file}:{first[res.id].line}"
            rejects.append(
                SynthReject(res.id, res.file, res.line, f"duplicate id (first at {where})")
            )
        else:
            first[res.id] = res
            good.append(res)
    return good, rejects
