"""Collectors for the data stages: synth (`sft.jsonl`, `stats.json`) and SFT (`records.jsonl`).

Their conversations carry tool calls only as `<tool_call>` text, so boxes come from parsing the
assistant turns, and a call counts as failed when the next observation is an Execution error.
SFT turns are marked with what the run's loss mask trains (`pixelctl.masks`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelctl.viewer import collect as c
from pixelctl.viewer.trajectory import Trajectory, build

Size = Callable[[Path | None], tuple[int, int] | None]
SFT_PANELS = [
    ("loss", ["loss"]),
    ("token accuracy", ["token_accuracy"]),
    ("learning rate", ["lr"]),
    ("grad norm", ["grad_norm"]),
    ("tokens per second", ["tokens_per_s"]),
]


def _mode(config: dict[str, Any]) -> str:
    return str((config.get("executor") or {}).get("box_mode") or "strict")


def spread(records: list[dict[str, Any]], key: str, per: int) -> list[dict[str, Any]]:
    """Up to `per` records of each value of `key`, in file order (a sample of every kind)."""
    seen: dict[str, int] = {}
    out = []
    for r in records:
        k = str(r.get(key))
        if seen.get(k, 0) < per:
            seen[k] = seen.get(k, 0) + 1
            out.append(r)
    return out


def _record_facts(r: dict[str, Any]) -> list[tuple[str, str]]:
    keys = ("id", "kind", "source", "question", "answer", "operations", "error_turns")
    return [
        (k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
        for k in keys
        if (v := r.get(k)) not in (None, "")
    ]


# ---------------------------------------------------------------------------------------- synth
def collect_synth(path: Path, limits: c.Limits, size: Size) -> c.StageReport:
    report = c.base_report("synth", path)
    config = c.read_yaml(path / "config.yaml")
    stats = c.read_json(path / "stats.json")
    if isinstance(stats, dict):
        report.tables += synth_tables(stats)
    else:
        report.notes.append("no stats.json yet (the run has not finished)")
    records = c.read_jsonl(path / "sft.jsonl")
    shown = spread(records, "kind", limits.per_kind)
    resolve = c.resolver(path, Path.cwd())
    by_kind: dict[str, c.Group] = {}
    for r in shown:
        kind = str(r.get("kind") or "?")
        group = by_kind.setdefault(kind, c.Group(kind))
        t = build(
            r.get("message_list") or [],
            resolve,
            mode=_mode(config),
            target_size=lambda p: size(p.path),
            title=str(r.get("id", "?")),
        )
        t.facts, t.anchor = _record_facts(r), f"synth-{r.get('id', '')}"
        _mark_errors(t, r.get("error_turns") or [])
        group.trajectories.append(t)
    report.groups = list(by_kind.values())
    report.notes.append(
        f"{len(records)} records in sft.jsonl; showing {len(shown)} ({limits.per_kind} per kind)"
    )
    return report


def _mark_errors(t: Trajectory, error_turns: list[Any]) -> None:
    """Synth's inserted erroneous operations: shown as not trained (docs/method.md §6 masks them)."""
    for i in error_turns:
        if isinstance(i, int) and 0 <= i < len(t.turns):
            t.turns[i].trained = False


def synth_tables(stats: dict[str, Any]) -> list[c.Table]:
    tables = []
    kinds = stats.get("by_kind")
    if isinstance(kinds, dict):
        rows = [[str(k), str(v)] for k, v in kinds.items()]
        rows.append(
            [
                "total",
                str(stats.get("records", sum(v for v in kinds.values() if isinstance(v, int)))),
            ]
        )
        tables.append(c.Table("records by kind", ["kind", "records"], rows))
    ops = (stats.get("operations_per_trajectory") or {}).get("histogram")
    if isinstance(ops, dict):
        tables.append(
            c.Table(
                "operations per trajectory",
                ["operations", "records"],
                [[str(k), str(v)] for k, v in ops.items()],
            )
        )
    rejects = stats.get("rejects") or {}
    reasons = rejects.get("by_reason") if isinstance(rejects, dict) else None
    if reasons:
        tables.append(
            c.Table(
                f"rejects ({rejects.get('total', '?')})",
                ["reason", "count"],
                [
                    [str(k), json.dumps(v) if not isinstance(v, int) else str(v)]
                    for k, v in reasons.items()
                ],
            )
        )
    return tables


# ---------------------------------------------------------------------------------------- sft
def collect_sft(path: Path, limits: c.Limits, size: Size) -> c.StageReport:
    report = c.base_report("sft", path)
    config = c.read_yaml(path / "config.yaml")
    meta = c.read_json(path / "meta.json") or {}
    summary = meta.get("sft") if isinstance(meta, dict) else None
    if isinstance(summary, dict):
        report.facts += [(f"sft.{k}", str(v)) for k, v in summary.items()]
    model = path / "model"
    report.facts.append(("model", f"{model}" if model.is_dir() else "not written yet"))
    report.charts = c.curves(c.read_jsonl(path / "metrics.jsonl"), SFT_PANELS)
    rows = c.read_jsonl(path / "records.jsonl")
    records = [_unfrozen(r) for r in rows]
    mask = str((config.get("sft") or {}).get("mask") or "last_two_assistant")
    group = c.Group(
        f"training records (loss mask: {mask})",
        f"{len(records)} records; showing {min(len(records), limits.records)}",
    )
    for r in spread(records, "kind", max(1, limits.records))[: limits.records]:
        t = build(
            r.get("messages") or [],
            c.resolver(path, Path.cwd()),
            mode=_mode(config),
            target_size=lambda p: size(p.path),
            title=str(r.get("id", "?")),
        )
        t.facts, t.anchor = _record_facts(r), f"sft-{r.get('id', '')}"
        _mark_trained(t, mask, r.get("error_turns") or [])
        group.trajectories.append(t)
    report.groups.append(group)
    return report


def _unfrozen(row: dict[str, Any]) -> dict[str, Any]:
    """A `records.jsonl` row (`images`, `record` as a JSON string) as a plain record."""
    rec = row.get("record")
    if isinstance(rec, str):
        try:
            rec = json.loads(rec)
        except ValueError:
            rec = None
    return rec if isinstance(rec, dict) else row


def _mark_trained(t: Trajectory, mask: str, error_turns: list[Any]) -> None:
    from pixelctl.masks import trained_turns

    try:
        trained = set(trained_turns([turn.role for turn in t.turns], mask, error_turns))  # type: ignore[arg-type]
    except ValueError:
        return
    for i, turn in enumerate(t.turns):
        if turn.role == "assistant":
            turn.trained = i in trained
