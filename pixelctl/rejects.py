"""One reject rule for every stage: check each record up front, list every reject, count them.

sft, rl, eval and synth all follow it:
1. every record is checked before anything runs: fields and answers by the stage's parser
   (`pixelctl.queries.to_query`, `pixelctl.sft.validate`, synth's seed checks) and every image
   it names by `check_images` (the file exists and its header decodes to a non-empty size;
   a video has at least one frame);
2. every reject goes to `<run>/rejects.jsonl`, one line `{file, line, id, reason, phase}`, and
   the stage prints one summary line (`summary`);
3. a run whose rejects exceed `max_reject_fraction` (recipe key, default 5%) refuses to start
   and names the file (`enforce`);
4. a sample that still fails while the stage runs (a file that decodes its header but not its
   pixels) is a counted skip: `append` adds it with `phase: "run"`.

Pure: Pillow is imported inside `image_problem` only.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pixelctl.errors import StageError

REJECTS_FILE = "rejects.jsonl"
DEFAULT_MAX_FRACTION = 0.05


@dataclass(frozen=True)
class Reject:
    file: str
    line: int | str | None  # 1-based line (jsonl), row or list position
    id: str | None
    reason: str
    phase: str = "check"  # "check": found up front; "run": failed while the stage ran

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.id or '?'}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # {file, line, id, reason, phase}: the rejects.jsonl line


def image_problem(path: str | Path) -> str | None:
    """Why an image file cannot be used (missing, unreadable header, empty), or None."""
    path = Path(path)
    if not path.is_file():
        return f"image {path} does not exist"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return f"image {path} is unreadable ({type(exc).__name__}: {exc})"
    if w <= 0 or h <= 0:
        return f"image {path} is empty ({w}x{h})"
    return None


def check_images(paths: Sequence[str | Path], is_video: bool = False) -> str | None:
    """The first problem with a record's images (or video frames), or None."""
    if not paths:
        return "no image (every item needs an image or, for a video, its frames)"
    for p in paths:
        problem = image_problem(p)
        if problem:
            return f"video frame: {problem}" if is_video else problem
    return None


def reason_key(reason: str) -> str:
    """A reason's kind, for counting: the text before the first ':' or '(' (paths dropped)."""
    head = reason.split(":", 1)[0].split("(", 1)[0].strip()
    words = [w for w in head.split() if "/" not in w and "." not in w]
    return " ".join(words) or head


def by_reason(rejects: Iterable[Any]) -> dict[str, int]:
    counts = Counter(reason_key(r.reason) for r in rejects)
    return dict(counts.most_common())


def _json(r: Any) -> dict[str, Any]:
    if hasattr(r, "to_json"):
        return r.to_json()
    return {"file": r.file, "line": r.line, "id": r.id, "reason": r.reason, "phase": "check"}


def write(path: Path, rejects: Iterable[Any]) -> Path:
    """Write (replace) the up-front rejects of a run; run-time ones are appended later."""
    runtime = [r for r in read(path) if r.get("phase") == "run"] if path.is_file() else []
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rejects:
            f.write(json.dumps(_json(r), ensure_ascii=False) + "\n")
        for r in runtime:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def append(path: Path, reject: Reject) -> None:
    """Add one run-time skip (flushed: a killed run keeps it)."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(reject.to_json(), ensure_ascii=False) + "\n")
        f.flush()


def read(path: Path) -> list[dict[str, Any]]:
    from pixelctl.rundir import iter_jsonl

    return list(iter_jsonl(path))


def summary(what: str, kept: int, rejects: Sequence[Any], file: Path | str | None) -> str:
    """`rl data: 62 kept, 2 rejected (image is unreadable: 1, missing field: 1) → FILE`."""
    line = f"{what}: {kept} kept, {len(rejects)} rejected"
    if rejects:
        parts = ", ".join(f"{k}: {n}" for k, n in by_reason(rejects).items())
        line += f" ({parts})"
        if file is not None:
            line += f"; every reject with file, line and reason in {file}"
    return line


def enforce(
    what: str, kept: int, rejects: Sequence[Any], max_fraction: float, file: Path | str
) -> None:
    """Refuse to start when more than `max_fraction` of the records were rejected."""
    total = kept + len(rejects)
    if not total:
        return
    fraction = len(rejects) / total
    if fraction > max_fraction:
        raise StageError(
            f"{what}: {len(rejects)} of {total} records rejected ({fraction:.1%}, over "
            f"max_reject_fraction={max_fraction:g}); fix them (see {file}) or raise "
            "max_reject_fraction in the recipe"
        )
