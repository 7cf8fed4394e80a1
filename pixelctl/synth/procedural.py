"""Procedural seeds for the tiny pipeline: big cluttered canvases with one small answer-bearing panel.

Each scene is a 1–2K px canvas of coloured clutter and one small white panel with a red frame (the
only one of its kind, so it can be found at low resolution). Inside the panel sits the answer: a
digit, a shape, a number of dots, two shapes whose left/right order is asked, an arrow's
direction, or a disc's colour (`synth.procedural.tasks` picks the mix).

Scale follows the executor exactly (`legibility`): the model sees the canvas fitted to the image
bounds, and a crop is cut from that fitted input and fitted to the crop bounds. The detail is
drawn so the fitted whole view shows it at `WHOLE_PX` (about a fifth of a 28-px visual token:
present but not resolvable) and a crop of the panel shows it at `CROP_MIN_PX` or more — which
holds only when the crop bounds upscale crops (`crop_min_pixels` near `crop_max_pixels`);
`legibility_report` says whether the recipe's bounds allow it. "Easy" scenes show the detail at
`EASY_PX` in the whole view; they feed the text-only trajectories.

Every scene is drawn from its own `random.Random(f"{seed}-{split}-{index}")`, so a split is
byte-identical on every run and on resume.
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import random
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from pixelctl.executor.geometry import smart_resize
from pixelctl.executor.settings import PixelBounds
from pixelctl.models.qwen import FACTOR
from pixelctl.rundir import jsonl_rows

# default detail height in the whole view (`detail_px`), a fifth of a 28-px token, and the largest
# at which the zoom probe found every task of the default mix unreadable there (docs/demo.md)
WHOLE_PX = 6.0
CROP_MIN_PX = 16.0  # after the zoom: the detail spans most of a token, which the model can read
EASY_PX = 20.0  # easy scenes: readable without zooming
KINDS = ("digit", "shape", "count", "relative", "arrow", "colour")
# the default mix (`synth.procedural.tasks`): the tasks the tiny model's vision tower can read in
# a crop and not in the whole view at 6 px (benchmarks/zoom_probe.py: digits and dot counts stay
# at chance even in the crop, so they are drawable but left out; docs/demo.md)
TASK_MIX = ("shape", "relative")
SHAPES = ("circle", "square", "triangle", "star")
DIRECTIONS = ("up", "down", "left", "right")
# ink colours far from each other, from the red frame and from the pale background
INKS = {"black": (0, 0, 0), "blue": (20, 60, 230), "green": (20, 170, 50), "yellow": (240, 200, 0)}
# every word answer a scene can have: the demo model's tokenizer keeps them whole
# (`builtin:tiny-qwen2.5-vl-demo`), so `\boxed{square}` repeats the sentence's token
ANSWER_WORDS = (*SHAPES, *DIRECTIONS, *INKS)
PANEL_FRAME = (220, 20, 20)
CLUTTER_COLOURS = [
    (70, 110, 160),
    (90, 150, 90),
    (200, 170, 60),
    (150, 90, 150),
    (60, 140, 140),
    (170, 120, 80),
    (110, 110, 110),
    (40, 70, 50),
    (180, 200, 220),
    (120, 60, 40),
]
PANEL_REF = "the small red-framed panel"
PANEL_RATIO = 0.6  # detail size / panel side


@dataclass(frozen=True)
class Legibility:
    """How big the answer-bearing detail is where the model looks at it, in pixels."""

    canvas: tuple[int, int]
    detail_px: float  # on the full-resolution canvas
    whole_px: float  # in the input as the executor fits it to the image bounds
    crop_px: float  # in the crop of the panel, as the executor returns it

    @property
    def zoom_helps(self) -> bool:
        return self.crop_px >= CROP_MIN_PX and self.whole_px <= WHOLE_PX + 1e-6


def _fit_scale(h: float, w: float, lo: int, hi: int) -> float:
    rh, rw = smart_resize(max(1, round(h)), max(1, round(w)), FACTOR, lo, hi)
    return min(rw / w, rh / h)


def legibility(w: int, h: int, detail: float, bounds: PixelBounds, pad: float) -> Legibility:
    """Follow the executor: the input is fitted to the image bounds, the crop (box + `pad` of the
    fitted side each way) is cut from that fitted input and fitted to the crop bounds. A zoom
    only magnifies when the crop bounds upscale the crop."""
    s = _fit_scale(h, w, bounds.image_min_pixels, bounds.image_max_pixels)
    panel = detail / PANEL_RATIO * s
    cw, ch = min(w * s, panel + 2 * pad * w * s), min(h * s, panel + 2 * pad * h * s)
    up = _fit_scale(ch, cw, bounds.crop_min_pixels, bounds.crop_max_pixels)
    return Legibility((w, h), detail, detail * s, detail * s * up)


def detail_size(
    w: int, h: int, bounds: PixelBounds, easy: bool, detail_px: float = WHOLE_PX
) -> float:
    """The canvas detail size that the fitted whole view shows at `detail_px` (or EASY_PX)."""
    s = _fit_scale(h, w, bounds.image_min_pixels, bounds.image_max_pixels)
    return (EASY_PX if easy else detail_px) / s


def legibility_report(
    canvas_min: int,
    canvas_max: int,
    bounds: PixelBounds,
    pad: float,
    detail_px: float = WHOLE_PX,
) -> dict[str, Any]:
    """Legibility at the smallest and largest canvas, and whether a zoom helps at both."""
    rows = [
        legibility(c, c, detail_size(c, c, bounds, False, detail_px), bounds, pad)
        for c in (canvas_min, canvas_max)
    ]
    return {
        "zoom_helps": all(r.zoom_helps for r in rows),
        "canvases": [
            {
                "canvas": r.canvas[0],
                "detail_px": round(r.detail_px, 1),
                "whole_px": round(r.whole_px, 1),
                "crop_px": round(r.crop_px, 1),
            }
            for r in rows
        ],
        "needs": f"whole view <= {WHOLE_PX:g} px and crop >= {CROP_MIN_PX:g} px; crops are cut "
        "from the fitted input, so only crop bounds that upscale (crop_min_pixels) "
        "make a zoom reveal the detail",
    }


# ----------------------------------------------------------------------------- drawing
def _clutter(draw: ImageDraw.ImageDraw, rng: random.Random, w: int, h: int) -> None:
    side = min(w, h)
    for _ in range(rng.randint(60, 120)):
        c = rng.choice(CLUTTER_COLOURS)
        s = rng.uniform(0.01, 0.12) * side
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        form = rng.choice(("ellipse", "rect", "poly", "line"))
        if form == "ellipse":
            draw.ellipse((x, y, x + s, y + s * rng.uniform(0.5, 1.5)), fill=c)
        elif form == "rect":
            draw.rectangle((x, y, x + s * rng.uniform(0.5, 2), y + s), fill=c)
        elif form == "poly":
            draw.polygon(
                [(x + rng.uniform(-s, s), y + rng.uniform(-s, s)) for _ in range(3)], fill=c
            )
        else:
            draw.line(
                (x, y, x + rng.uniform(-3, 3) * s, y + rng.uniform(-3, 3) * s),
                fill=c,
                width=max(1, int(s / 10)),
            )


def _shape(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, r: float) -> None:
    ink = (0, 0, 0)
    if name == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=ink)
    elif name == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=ink)
    elif name == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=ink)
    else:  # a five-pointed star
        pts = [
            (
                cx + (r if k % 2 == 0 else r * 0.45) * math.sin(k * math.pi / 5),
                cy - (r if k % 2 == 0 else r * 0.45) * math.cos(k * math.pi / 5),
            )
            for k in range(10)
        ]
        draw.polygon(pts, fill=ink)


def _arrow(draw: ImageDraw.ImageDraw, way: str, cx: float, cy: float, r: float) -> None:
    """A black isosceles triangle with its apex towards `way` (its base the opposite side)."""
    dx, dy = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}[way]
    px, py = -dy, dx  # across the apex direction
    draw.polygon(
        [
            (cx + dx * r, cy + dy * r),
            (cx - dx * r + px * r, cy - dy * r + py * r),
            (cx - dx * r - px * r, cy - dy * r - py * r),
        ],
        fill=(0, 0, 0),
    )


def _panel_content(
    draw: ImageDraw.ImageDraw, rng: random.Random, kind: str, box: tuple, detail: float
) -> tuple[str, str, list[str], str]:
    """Draw inside the panel; return (question, answer, options, what the panel shows)."""
    x, y, s = box
    cx, cy = x + s / 2, y + s / 2
    if kind == "digit":
        d = str(rng.randint(0, 9))
        font = ImageFont.load_default(size=max(6, round(detail * 1.25)))
        draw.text((cx, cy), d, fill=(0, 0, 0), font=font, anchor="mm")
        opts = _options(rng, d, [str(i) for i in range(10)], 4)
        return f"What digit is written inside {PANEL_REF}?", d, opts, f"the digit {d}"
    if kind == "shape":
        name = rng.choice(SHAPES)
        _shape(draw, name, cx, cy, detail / 2)
        return (f"What shape is drawn inside {PANEL_REF}?", name, list(SHAPES), f"a black {name}")
    if kind == "colour":
        name = rng.choice(list(INKS))
        r = detail / 2
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=INKS[name])
        return (
            f"What colour is the disc inside {PANEL_REF}?",
            name,
            list(INKS),
            f"a {name} disc",
        )
    if kind == "arrow":
        way = rng.choice(DIRECTIONS)
        _arrow(draw, way, cx, cy, detail / 2)
        return (
            f"Which way does the arrow inside {PANEL_REF} point?",
            way,
            list(DIRECTIONS),
            f"an arrow pointing {way}",
        )
    if kind == "count":
        k = rng.randint(1, 6)
        r = detail / 5
        cells = rng.sample([(i, j) for i in range(3) for j in range(3)], k)
        for i, j in cells:
            px, py = x + s * (0.25 + 0.25 * i), y + s * (0.25 + 0.25 * j)
            draw.ellipse((px - r, py - r, px + r, py + r), fill=(0, 0, 0))
        word = f"{k} dot{'s' if k > 1 else ''}"
        return (
            f"How many dots are inside {PANEL_REF}?",
            str(k),
            _options(rng, str(k), [str(i) for i in range(1, 7)], 4),
            word,
        )
    left = rng.random() < 0.5
    r = detail / 2.2
    _shape(draw, "circle", cx - s * 0.22 if left else cx + s * 0.22, cy, r)
    _shape(draw, "triangle", cx + s * 0.22 if left else cx - s * 0.22, cy, r)
    side = "left" if left else "right"
    q = f"Inside {PANEL_REF}, is the circle to the left or to the right of the triangle?"
    return q, side, ["left", "right"], f"the circle on the {side} of the triangle"


def _options(rng: random.Random, answer: str, pool: list[str], n: int) -> list[str]:
    others = rng.sample([p for p in pool if p != answer], n - 1)
    opts = [answer, *others]
    rng.shuffle(opts)
    return opts


def draw_scene(
    rng: random.Random,
    canvas_min: int,
    canvas_max: int,
    bounds: PixelBounds,
    easy: bool,
    kinds: tuple[str, ...] = TASK_MIX,
    grid: int = 3,
    detail_px: float = WHOLE_PX,
    clear_margin: float = 0.0,
) -> tuple[Image.Image, dict[str, Any]]:
    """One scene and its seed fields (pixel box, question, answer, options, panel text).
    The panel sits at the centre of one cell of a `grid` x `grid` grid (1: the canvas centre);
    the detail is `detail_px` tall in the fitted whole view (EASY_PX in easy scenes). The canvas
    within `clear_margin` (a fraction of its side) of the panel is left free of clutter."""
    w, h = rng.randint(canvas_min, canvas_max), rng.randint(canvas_min, canvas_max)
    detail = detail_size(w, h, bounds, easy, detail_px)
    s = detail / PANEL_RATIO
    bg = tuple(rng.randint(215, 245) for _ in range(3))
    img = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(img)
    _clutter(draw, rng, w, h)
    # the panel sits at the centre of one cell of a grid x grid grid (3x3: the cells `where_words`
    # names), so finding it is a coarse choice the whole view supports; reading it needs the zoom
    col, row = rng.randrange(grid), rng.randrange(grid)
    x, y = (col + 0.5) * w / grid - s / 2, (row + 0.5) * h / grid - s / 2
    frame = max(1, round(s / 14))
    if clear_margin > 0:
        mx, my = clear_margin * w, clear_margin * h
        draw.rectangle(
            (x - frame - mx, y - frame - my, x + s + frame + mx, y + s + frame + my), fill=bg
        )
    draw.rectangle((x - frame, y - frame, x + s + frame, y + s + frame), fill=PANEL_FRAME)
    draw.rectangle((x, y, x + s, y + s), fill=(255, 255, 255))
    kind = rng.choice(kinds)
    question, answer, options, shows = _panel_content(draw, rng, kind, (x, y, s), detail)
    fields = {
        "question": f"{question}\nOptions: {', '.join(options)}.",
        "answer": answer,
        "options": options,
        "easy": easy,
        "task": kind,
        "caption": "a cluttered canvas of coloured shapes with one small red-framed panel",
        "boxes": [
            {
                "bbox": [
                    round(x - frame, 2),
                    round(y - frame, 2),
                    round(s + 2 * frame, 2),
                    round(s + 2 * frame, 2),
                ],
                "label": "red-framed panel",
                "text": shows,
            }
        ],
    }
    return img, fields


def panel_picture(
    rng: random.Random,
    side: int = 224,
    detail_px: float = 48.0,
    blur: tuple[float, float] = (6.0, 9.0),
    kinds: tuple[str, ...] = TASK_MIX,
) -> tuple[Image.Image, str]:
    """A `side`² picture with the demo's panel at its centre, its detail `detail_px` tall, then
    resampled down and back up by a factor drawn from `blur` (a zoom of a detail a few pixels
    tall looks like that); returns (picture, what the panel shows). For the demo model's
    perception pretraining (`pixelctl.models.perception`), never a demo scene."""
    if side % FACTOR:
        raise ValueError(f"panel_picture: side must be a multiple of {FACTOR}, got {side}")
    area = side * side
    bounds = PixelBounds(area, area, area, area, area, area)  # the picture is its own fitted view
    image, fields = draw_scene(
        rng, side, side, bounds, easy=False, kinds=kinds, grid=1, detail_px=detail_px
    )
    small = max(FACTOR, round(side / rng.uniform(*blur)))
    image = image.resize((small, small), Image.BILINEAR).resize((side, side), Image.BICUBIC)
    return image, fields["boxes"][0]["text"]


# ----------------------------------------------------------------------------- splits
def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _draw_and_write(
    folder: Path, split: str, seed: int, n_easy: int, scene: dict[str, Any], i: int
) -> str:
    """Scene `i` of a split, written under `folder`; returns its seed-file line (a pool job: the
    scene's own rng makes it the same in any process, in any order)."""
    rng = random.Random(f"{seed}-{split}-{i}")
    img, fields = draw_scene(rng, easy=i < n_easy, **scene)
    name = f"scene-{i:05d}.png"
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    img.save(tmp, format="PNG", compress_level=1)
    tmp.replace(folder / name)
    record = {"id": f"procedural-{split}-{i:05d}", "image": f"{split}/{name}", "box_format": "xywh"}
    return json.dumps(record | fields, ensure_ascii=False)


def scene_workers(n: int) -> int:
    """Processes for `n` scenes: one per usable core (at most 8), one for a few scenes, where
    starting a process costs more than it saves. Drawing and the PNG encoding (most of a 1K
    scene's ~30 ms) are pure Python and zlib, so threads would not help."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if n < 64 else max(1, min(cores or 1, 8))


def generate_split(
    out: Path,
    split: str,
    n: int,
    *,
    seed: int,
    canvas_min: int,
    canvas_max: int,
    bounds: PixelBounds,
    n_easy: int = 0,
    kinds: tuple[str, ...] = TASK_MIX,
    grid: int = 3,
    detail_px: float = WHOLE_PX,
    clear_margin: float = 0.0,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write `n` scenes under out/procedural/<split>/ and their seed file; reuse a finished one.

    The first `n_easy` indices are easy scenes. Scenes are drawn by `workers` processes
    (`scene_workers(n)` if None) and are byte-identical to one process's. `on_progress(done, n)`
    follows them. The seed file is written last and atomically, so its presence means the split is
    complete.
    """
    seed_file = out / "procedural" / f"{split}.jsonl"
    if seed_file.is_file():
        return seed_file
    folder = out / "procedural" / split
    folder.mkdir(parents=True, exist_ok=True)
    scene = {
        "canvas_min": canvas_min,
        "canvas_max": canvas_max,
        "bounds": bounds,
        "kinds": kinds,
        "grid": grid,
        "detail_px": detail_px,
        "clear_margin": clear_margin,
    }
    job = functools.partial(_draw_and_write, folder, split, seed, n_easy, scene)
    workers = scene_workers(n) if workers is None else workers
    lines: list[str] = []
    if workers <= 1:
        for i in range(n):
            lines.append(job(i))
            if on_progress:
                on_progress(len(lines), n)
    else:
        # spawned, not forked: the caller may hold threads (progress bars, torch) that a fork
        # copies mid-state. Results come back in index order, so the seed file is the same.
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_ignore_sigint)
        try:
            for line in pool.map(job, range(n), chunksize=8):
                lines.append(line)
                if on_progress:
                    on_progress(len(lines), n)
        except BaseException:
            # Ctrl-C or a failed scene: drop the chunks not started (map queued them all), let
            # the running ones finish their files; no seed file, so a rerun draws the split again
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    _atomic_write(seed_file, ("\n".join(lines) + "\n").encode() if lines else b"")
    return seed_file


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent, which cancels what is queued (one traceback, the
    parent's, instead of one per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def eval_records(seed_file: Path, out: Path) -> list[dict[str, Any]]:
    """The held-out split in the authors' layout, image paths relative to `out`."""
    rel = seed_file.parent.relative_to(out).as_posix()
    recs = []
    for number, s in jsonl_rows(seed_file):  # our own file, written whole
        if isinstance(s, json.JSONDecodeError):
            raise ValueError(f"{seed_file}, line {number}: not valid JSON ({s.msg})")
        recs.append(
            {
                "qid": s["id"],
                "question": s["question"],
                "image": [f"{rel}/{s['image']}"],
                "answer": s["answer"],
                "is_video": False,
                "options": s["options"],
                "task": s["task"],
            }
        )
    return recs
