"""Load SFT records: read every source, validate every record on a thread pool, keep order.

Validation decodes every image (Pillow releases the GIL while decoding), so records are
checked in parallel; each failure becomes a `Skipped` entry with its file, line and reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pixelctl.masks import MaskMode, trained_turns
from pixelctl.sft.records import LoadResult, Record, Skipped, iter_raw, resolve_sources
from pixelctl.sft.validate import validate_record


def load_records(
    data: Sequence[str | Path],
    settings: Any,
    mask: MaskMode = "last_two_assistant",
    workers: int = 8,
) -> LoadResult:
    """Read every source, validate every record against `settings` (the executor's).

    Validation decodes every image, so records are checked on a thread pool (Pillow releases
    the GIL while decoding); results keep the file order.
    """
    from concurrent.futures import ThreadPoolExecutor

    files = resolve_sources(data)
    items = [(path, line, raw) for path in files for line, raw in iter_raw(path)]
    records: list[Record] = []
    skipped: list[Skipped] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        checked = pool.map(lambda item: _check(*item, settings, mask), items)
        for outcome in checked:
            (records if isinstance(outcome, Record) else skipped).append(outcome)
    return LoadResult(records, skipped, files)


def _check(path: Path, line: int, raw: Any, settings: Any, mask: MaskMode) -> Record | Skipped:
    if isinstance(raw, Exception):
        return Skipped(str(path), line, None, f"not valid JSON ({raw})")
    rid = raw.get("id") if isinstance(raw, dict) else None
    rid = str(rid) if rid is not None else None
    result = validate_record(raw, path.parent, settings)
    if isinstance(result, str):
        return Skipped(str(path), line, rid, result)
    result.id = rid or f"{path.stem}-{line}"
    result.source = f"{path}:{line}"
    if not trained_turns(result.roles, mask, result.error_turns):
        return Skipped(str(path), line, rid, f"no assistant turn is trained under sft.mask={mask}")
    return result
