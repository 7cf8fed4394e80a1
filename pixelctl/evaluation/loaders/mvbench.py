"""MVBench, official layout: `json/<task>.json` per task and the source videos under `video/`.

Each item: `video`, `question`, `candidates`, `answer` (the text of one candidate) and, for
the tasks cut from longer videos, `start`/`end` in seconds. The prompt follows the official
template (`Question: …\\nOptions:\\n(A) …`); the gold answer is the candidate's letter.

Bounds: the official code (Ask-Anything `video_chat2/mvbench.ipynb`, the fourth field of each
`data_list` entry) cuts the clip to `[start, end]` for five tasks only, `BOUND_TASKS`; every
other task reads the whole video even when its records carry `start`/`end`.

Frames, 16 per video, by the official rule (`get_index` in the same notebook): with
the clip bound `[start, end]` (or the whole video), `start_idx = max(first, round(start·fps))`,
`end_idx = min(round(end·fps), last)`, `seg = (end_idx − start_idx)/16`, frame `i` is
`int(start_idx + seg/2 + round(seg·i))`. Videos: `last = n_frames − 1`, their average fps,
`first = 0`; GIFs: fps 25; frame folders (`00001.jpg` …): fps 3, `first = 1`,
`last = number of files`. Frames already extracted to `<frames_dir>/<task>/<key>/` are used as
they are (sorted by name); otherwise they are decoded with PyAV and written there (JPEG, quality
95) so a second run skips the decoding. The key is the video's stem for a whole video and
`<stem>@<start>-<end>` for a bounded clip (`ZS9XR@1.0-3.0`), so two questions on one video with
different bounds never share frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelctl.agent import Query
from pixelctl.evaluation.loaders._common import (
    QueryError,
    check_unique,
    option_letter,
    read_json,
)
from pixelctl.queries import require

N_FRAMES = 16
# tasks whose clip is cut to the record's [start, end] (official data_list, bound flag True)
BOUND_TASKS = frozenset(
    {
        "action_sequence",
        "action_prediction",
        "object_interaction",
        "action_localization",
        "episodic_reasoning",
    }
)
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
# task json → (folder under video/, the official source type); from the official data list
TASK_FOLDERS: dict[str, str] = {
    "action_sequence": "star/Charades_v1_480",
    "action_prediction": "star/Charades_v1_480",
    "action_antonym": "ssv2_video",
    "fine_grained_action": "Moments_in_Time_Raw/videos",
    "unexpected_action": "FunQA_test/test",
    "object_existence": "clevrer/video_validation",
    "object_interaction": "star/Charades_v1_480",
    "object_shuffle": "perception/videos",
    "moving_direction": "clevrer/video_validation",
    "action_localization": "sta/sta_video",
    "scene_transition": "scene_qa/video",
    "action_count": "perception/videos",
    "moving_count": "clevrer/video_validation",
    "moving_attribute": "clevrer/video_validation",
    "state_change": "perception/videos",
    "fine_grained_pose": "nturgbd",
    "character_order": "perception/videos",
    "egocentric_navigation": "vlnqa",
    "episodic_reasoning": "tvqa/frames_fps3_hq",
    "counterfactual_inference": "clevrer/video_validation",
}


def frame_indices(
    bound: tuple[float, float] | None, fps: float, last: int, first: int = 0, n: int = N_FRAMES
) -> list[int]:
    """The official `get_index`: n segment midpoints of the clip, in frame numbers."""
    start, end = bound if bound is not None else (-100000.0, 100000.0)
    start_idx = max(first, round(start * fps))
    end_idx = min(round(end * fps), last)
    seg = float(end_idx - start_idx) / n
    return [int(start_idx + seg / 2 + round(seg * i)) for i in range(n)]


def format_question(question: str, candidates: list[str]) -> str:
    lines = [f"({option_letter(i)}) {c}" for i, c in enumerate(candidates)]
    return "\n".join([f"Question: {question}", "Options:", *lines])


def _listed_frames(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)


def _decode(source: Path, bound: tuple[float, float] | None) -> list[Any]:
    """16 PIL frames of a video file, a GIF or a frame folder, by the official rule."""
    from PIL import Image

    if source.is_dir():  # frame folders are numbered from 1: 00001.jpg …
        last = len([p for p in source.iterdir() if p.is_file()])
        idx = frame_indices(bound, 3.0, last, first=1)
        return [Image.open(source / f"{i:05d}.jpg").convert("RGB") for i in idx]
    if source.suffix.lower() == ".gif":
        with Image.open(source) as gif:
            total = getattr(gif, "n_frames", 1)
            wanted = frame_indices(bound, 25.0, total - 1)
            frames = {}
            for i in sorted(set(wanted)):
                gif.seek(min(i, total - 1))
                frames[i] = gif.convert("RGB")
            return [frames[i] for i in wanted]
    return _decode_video(source, bound)


def _decode_video(source: Path, bound: tuple[float, float] | None) -> list[Any]:
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 30)
        total = stream.frames or sum(1 for p in container.demux(stream) if p.size)
    wanted = frame_indices(bound, fps, total - 1)
    targets, frames = set(wanted), {}
    with av.open(str(source)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in targets:
                frames[i] = frame.to_image().convert("RGB")
            if i >= max(targets):
                break
    if not frames:
        raise ValueError("no frame could be decoded")
    last_seen = max(frames)
    return [frames.get(i, frames[last_seen]) for i in wanted]  # short streams: repeat the end


def clip_bound(task: str, item: dict[str, Any], path: Path, record: str):
    """`(start, end)` for the tasks the official code bounds, else None (the whole video)."""
    if task not in BOUND_TASKS:
        return None
    try:
        return (float(item["start"]), float(item["end"]))
    except (KeyError, TypeError, ValueError):
        raise QueryError(
            path,
            f"{task} clips are cut to [start, end]; this record has no numeric start/end",
            record,
        ) from None


def cache_key(video: str, bound: tuple[float, float] | None) -> str:
    """The frame folder's name: the video's stem, plus the clip bound when there is one."""
    stem = str(Path(video).with_suffix(""))
    return stem if bound is None else f"{stem}@{bound[0]!r}-{bound[1]!r}"


def _frames(
    root: Path, frames_dir: Path, task: str, item: dict[str, Any], path: Path, record: str
) -> tuple[str, ...]:
    video = str(item["video"])
    bound = clip_bound(task, item, path, record)
    cached = frames_dir / task / cache_key(video, bound)
    listed = _listed_frames(cached)
    if listed:
        return tuple(str(p.resolve()) for p in listed)
    folder = TASK_FOLDERS.get(task, "")
    candidates = [root / "video" / folder / video, root / "video" / video, root / folder / video]
    source = next((c for c in candidates if c.exists()), None)
    if source is None:
        looked = ", ".join(str(c) for c in candidates)
        raise QueryError(path, f"video {video!r} not found (looked in {looked}, {cached})", record)
    try:
        images = _decode(source, bound)
    except Exception as exc:  # decoders raise many types; the message names the video
        raise QueryError(path, f"cannot decode {source}: {exc}", record) from None
    cached.mkdir(parents=True, exist_ok=True)
    out = []
    for i, img in enumerate(images, start=1):
        target = cached / f"frame_{i:02d}.jpg"
        tmp = target.with_name(f".{target.name}.tmp")
        img.save(tmp, format="JPEG", quality=95)
        tmp.replace(target)
        out.append(str(target.resolve()))
    return tuple(out)


def _task_queries(root: Path, frames_dir: Path, path: Path, limit: int | None) -> list[Query]:
    task = path.stem
    data = read_json(path)
    if not isinstance(data, list):
        raise QueryError(path, "expected a JSON list of questions")
    queries = []
    for i, item in enumerate(data[:limit]):
        record = f"item {i}"
        if not isinstance(item, dict):
            raise QueryError(path, "expected a JSON object", record)
        require(item, "video", str, path, record)
        candidates = [str(c) for c in require(item, "candidates", list, path, record)]
        answer = str(require(item, "answer", (str, int), path, record))
        if answer not in candidates:
            raise QueryError(path, f"answer {answer!r} is not among the candidates", record)
        queries.append(
            Query(
                qid=f"mvbench-{task}-{i}",
                question=format_question(require(item, "question", str, path, record), candidates),
                images=_frames(root, frames_dir, task, item, path, record),
                is_video=True,
                answer=option_letter(candidates.index(answer)),
                benchmark="mvbench",
                options=tuple(candidates),
                category=task,
            )
        )
    return queries


def load(
    root: Path | str, frames_dir: Path | str | None = None, limit: int | None = None
) -> list[Query]:
    """Tasks under `root/json/` (name order), frames from `frames_dir` (default root/frames).

    `limit` stops early, so a smoke run does not decode every video first."""
    root = Path(root)
    json_dir = root / "json" if (root / "json").is_dir() else root
    files = sorted(json_dir.glob("*.json")) if json_dir.is_dir() else []
    if not files:
        raise QueryError(root, "no MVBench task file (json/<task>.json) found")
    frames = Path(frames_dir) if frames_dir is not None else root / "frames"
    queries: list[Query] = []
    for f in files:
        left = None if limit is None else limit - len(queries)
        if left is not None and left <= 0:
            break
        queries += _task_queries(root, frames, f, left)
    return check_unique(queries, root)
