"""Sampled rollouts of each round, with their crops, for the viewer and for reading by eye."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pixelctl.agent import Outcome
from pixelctl.engines.local.store import dump_messages


def save_samples(
    folder: Path, r: int, outcomes: list[Outcome], rewards: list[float], advantages: list[float]
) -> Path:
    """Write round r's first group: `samples/round-XXXXX.jsonl` plus PNGs under `samples/img/`."""
    images = folder / "img"
    images.mkdir(parents=True, exist_ok=True)
    path = folder / f"round-{r + 1:05d}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i, o in enumerate(outcomes):
            record = {
                "round": r + 1,
                "qid": o.query.qid,
                "question": o.query.question,
                "answer": o.query.answer,
                "inputs": list(o.query.images),
                "messages": dump_messages(o.messages, images, f"r{r + 1:05d}-{i}"),
                "calls": [c.__dict__ for c in o.calls],
                "stop_reason": o.stop_reason,
                "correct": o.correct,
                "reward": rewards[i],
                "advantage": advantages[i],
                "completion_tokens": o.completion_tokens,
            }
            f.write(json.dumps(record, default=list) + "\n")
    return path


# ------------------------------------------------------------------------------- tracking
ROLLOUT_IMAGES = 4  # rollouts of each round shown in TensorBoard / W&B
IMAGE_SIDE = 512


def rollout_pictures(path: Path, run_dir: Path, mode: str, n: int = ROLLOUT_IMAGES) -> list:
    """The input of the first `n` rollouts in a round's samples file, with the boxes each
    rollout asked for drawn in (the viewer's trajectory walk and box drawing)."""
    from PIL import Image

    from pixelctl.viewer.assets import draw_boxes
    from pixelctl.viewer.collect import read_jsonl, resolver
    from pixelctl.viewer.trajectory import build

    def size(pic):
        src = pic.fitted or pic.path
        if src is None:
            return None
        with Image.open(src) as im:
            return im.size

    resolve = resolver(path.parent / "img", run_dir, Path.cwd())
    out = []
    for r in read_jsonl(path)[:n]:
        t = build(
            r.get("messages") or [],
            resolve,
            calls=r.get("calls") or [],
            originals=[str(p) for p in r.get("inputs") or []],
            mode=mode,
            target_size=size,
        )
        pics = [p for turn in t.turns if turn.inputs for p in turn.pictures if p.path is not None]
        if not pics:
            continue
        with Image.open(pics[0].path) as im:
            img = im.convert("RGB")
        img.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
        draw_boxes(img, pics[0].boxes)
        out.append(img)
    return out


class RoundTracker:
    """The local engine's tracking hook: the scalars of every metrics line (at its `step`), and
    a few rollouts of each round as images with their boxes (pixelctl.tracking)."""

    def __init__(self, recipe: Any, run_dir: Path, *, resume_step: int | None = None) -> None:
        from pixelctl.tracking import Tracker

        cfg, self.run_dir, self.mode = recipe.logging, run_dir, recipe.executor.box_mode
        on = cfg.tensorboard or cfg.wandb is not None
        self.tracker = (
            Tracker(cfg, run_dir, config=recipe.model_dump(mode="json"), resume_step=resume_step)
            if on
            else None
        )

    def log(self, record: dict[str, Any], step: int) -> None:
        if self.tracker is not None:
            self.tracker.scalars(record, int(record.get("step", step)))

    def rollouts(self, r: int, step: int) -> None:
        """Round r's sampled rollouts (samples/round-XXXXX.jsonl), then flush: a killed run
        keeps every finished round in its event file."""
        if self.tracker is None:
            return
        path = self.run_dir / "samples" / f"round-{r + 1:05d}.jsonl"
        try:
            pictures = rollout_pictures(path, self.run_dir, self.mode) if path.is_file() else []
        except (OSError, ValueError):  # an unreadable picture costs the images, not the run
            pictures = []
        self.tracker.images("rollouts", pictures, step)
        self.tracker.flush()

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
