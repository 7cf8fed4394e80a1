"""The output folder: append-only record files that survive a kill, and what is already done.

`sft.jsonl` and `rejects.jsonl` only ever grow, one flushed line per seed, written after the
seed's images are complete on disk. A kill can leave at most a torn last line; `open_outputs`
cuts it off before appending, so the file stays valid JSONL. A seed is done when its id is in
`sft.jsonl`, or it was rejected at validation (a permanent reason). Writer and re-execution failures
are retried on resume. `rl.jsonl` is derived from `sft.jsonl` at the end (atomically), so the two
can never disagree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pixelctl.rundir import iter_jsonl
from pixelctl.synth.seeds import SynthReject

SFT, RL, REJECTS, EVAL, STATS = "sft.jsonl", "rl.jsonl", "rejects.jsonl", "eval.jsonl", "stats.json"


def repair_tail(path: Path) -> int:
    """Cut a torn last line (no trailing newline) left by a kill; returns bytes removed."""
    if not path.is_file():
        return 0
    with path.open("rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        f.seek(0)
        data = f.read()
        keep = data.rfind(b"\n") + 1
        f.truncate(keep)
        return size - keep


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_jsonl_atomic(path: Path, records: list[dict[str, Any]]) -> None:
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


class Outputs:
    """Appenders for sft.jsonl and rejects.jsonl, plus the resume bookkeeping."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.repaired = repair_tail(out / SFT) + repair_tail(out / REJECTS)
        self.written = {r["id"] for r in iter_jsonl(out / SFT)}
        self.rejected = {(r["id"], r["reason"]) for r in iter_jsonl(out / REJECTS)}
        self.permanent = {i for i, _ in self._seed_rejects()}
        self._sft = (out / SFT).open("a", encoding="utf-8")
        self._rej = (out / REJECTS).open("a", encoding="utf-8")

    def _seed_rejects(self) -> list[tuple[str, str]]:
        return [
            (r["id"], r["reason"])
            for r in iter_jsonl(self.out / REJECTS)
            if r.get("stage", "seed") == "seed"
        ]

    def is_done(self, seed_id: str) -> bool:
        return seed_id in self.written or seed_id in self.permanent

    def add_record(self, record: dict[str, Any]) -> None:
        if record["id"] in self.written:  # never twice, whatever the caller does
            return
        self._sft.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._sft.flush()  # a killed process keeps every flushed line (the OS holds it)
        self.written.add(record["id"])

    def add_reject(self, reject: SynthReject) -> bool:
        """Record a reject once per (id, reason); False when it was already recorded."""
        key = (reject.id, reject.reason)
        if key in self.rejected:
            return False
        self._rej.write(json.dumps(reject.to_json(), ensure_ascii=False) + "\n")
        self._rej.flush()
        self.rejected.add(key)
        if reject.stage == "seed":
            self.permanent.add(reject.id)
        return True

    def close(self) -> None:
        self._sft.close()
        self._rej.close()

    def write_rl(self) -> int:
        """rl.jsonl from sft.jsonl: one RL prompt per written seed, in the authors' layout."""
        recs = []
        for r in iter_jsonl(self.out / SFT):
            rl = {
                "qid": r["id"],
                "question": r["question"],
                "image": r["image"],
                "answer": r["answer"],
                "is_video": r["is_video"],
            }
            if "options" in r:
                rl["options"] = r["options"]
            recs.append(rl)
        write_jsonl_atomic(self.out / RL, recs)
        return len(recs)
