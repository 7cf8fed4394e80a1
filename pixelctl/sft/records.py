"""Read SFT records (the released format and synth's output) and keep only the valid ones.

A record is a JSON object with `message_list` (Qwen messages: `{role, content}`, content a
string or a list of `{type: text|image|video, ...}` items; images by path relative to the
record file's folder). Synth adds `id`, `kind`, `error_turns` and `answer`; the released data
has `message_list` only. `sft.data` entries are record files (`.jsonl`, or `.json` holding a
list) or folders holding `sft.jsonl` (a synth run directory, or its `-latest` link).

Nothing is dropped silently: every record that fails a check (`pixelctl.sft.validate`, run by
`pixelctl.sft.load`) becomes a `Skipped` entry naming its file, line and reason, and the stage prints and saves them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelctl.rundir import jsonl_rows


class SFTDataError(Exception):
    """An SFT data source that cannot be read at all (missing file, not JSON lines, wrong shape);
    a bad record in a readable source is a `Skipped`, not an error."""


@dataclass
class Record:
    """One valid conversation, normalized: content lists, absolute paths, visual kinds tagged."""

    id: str
    source: str  # "file:line", for messages
    messages: list[dict[str, Any]]
    error_turns: tuple[int, ...] = ()
    kind: str | None = None
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (w, h) of each still, in order

    @property
    def roles(self) -> list[str]:
        return [m["role"] for m in self.messages]

    def image_items(self) -> list[dict[str, Any]]:
        """The still-image items (inputs and observations) in conversation order."""
        return [item for m in self.messages for item in m["content"] if item.get("type") == "image"]

    def to_row(self) -> dict[str, Any]:
        """A `datasets` row: TRL detects a vision dataset by the `images` column."""
        return {
            "images": [item["image"] for item in self.image_items()],
            "record": json.dumps(
                {
                    "id": self.id,
                    "source": self.source,
                    "messages": self.messages,
                    "error_turns": list(self.error_turns),
                    "kind": self.kind,
                }
            ),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Record:
        data = json.loads(row["record"])
        return cls(
            data["id"], data["source"], data["messages"], tuple(data["error_turns"]), data["kind"]
        )


@dataclass(frozen=True)
class Skipped:
    file: str
    line: int  # 1-based line (jsonl) or list position (json)
    id: str | None
    reason: str

    def __str__(self) -> str:
        name = f" ({self.id})" if self.id else ""
        return f"{self.file}:{self.line}{name}: {self.reason}"


@dataclass
class LoadResult:
    records: list[Record]
    skipped: list[Skipped]
    files: list[Path]


def resolve_sources(data: Sequence[str | Path]) -> list[Path]:
    """Record files for `sft.data` entries; a folder means its `sft.jsonl`."""
    if not data:
        raise SFTDataError("sft.data is empty; list record files or synth run directories")
    files = []
    for entry in data:
        path = Path(entry).expanduser()
        if path.is_dir():
            path = path / "sft.jsonl"
        if not path.is_file():
            raise SFTDataError(
                f"sft.data entry {entry!r}: {path} does not exist; run `pixelctl synth` first or "
                "point at a .jsonl/.json record file or a folder holding sft.jsonl"
            )
        if path.suffix not in (".jsonl", ".json"):
            raise SFTDataError(f"sft.data entry {entry!r}: expected a .jsonl or .json file")
        files.append(path)
    return files


def iter_raw(path: Path) -> Iterator[tuple[int, Any]]:
    """(line or position, parsed JSON or the exception) for every record in a file."""
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SFTDataError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, list):
            raise SFTDataError(f"{path}: a .json record file must hold a list of records")
        yield from enumerate(data, start=1)
        return
    yield from jsonl_rows(path)


def write_skipped(skipped: Sequence[Skipped], path: Path) -> None:
    """One JSON line per skipped record, so a user can grep and fix them."""
    with path.open("w", encoding="utf-8") as f:
        for s in skipped:
            f.write(json.dumps({"file": s.file, "line": s.line, "id": s.id, "reason": s.reason}))
            f.write("\n")


def skip_summary(skipped: Sequence[Skipped]) -> dict[str, int]:
    """Skipped records counted by reason (the part of the reason before the first ':')."""
    out: dict[str, int] = {}
    for s in skipped:
        key = s.reason.split(":", 1)[0]
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


FROZEN_FILE = "records.jsonl"


def write_frozen(records: Sequence[Record], run_path: Path) -> Path:
    """Freeze the valid records into the run: every rank and every resume reads this file."""
    path = run_path / FROZEN_FILE
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({**r.to_row(), "sizes": r.sizes}) + "\n")
    tmp.replace(path)
    return path


def read_frozen(run_path: Path) -> list[Record]:
    out = []
    path = run_path / FROZEN_FILE
    for number, row in jsonl_rows(path):  # written whole (tmp + rename): no torn tail
        if isinstance(row, json.JSONDecodeError):
            raise SFTDataError(f"{path}, line {number}: not valid JSON ({row.msg})")
        record = Record.from_row(row)
        record.sizes = [tuple(s) for s in row.get("sizes", [])]
        out.append(record)
    return out
