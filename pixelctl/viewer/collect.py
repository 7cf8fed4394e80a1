"""Read run directories into plain data for the page: facts, curves, tables, trajectories.

A run directory is recognised by its `meta.json` (`stage`: synth, sft, rl, eval); a demo
directory holds stage runs as sub-folders and becomes one page with a section per stage.
Everything is read tolerantly: a missing or torn file gives an empty part and a note, never an
exception, because a report is most wanted exactly when a run died half-way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pixelctl.rundir import iter_jsonl
from pixelctl.viewer.trajectory import Trajectory

STAGE_ORDER = ("demo", "trap", "synth", "sft", "rl", "eval")
CONTAINERS = ("demo", "trap")  # stages whose folder holds other stage runs


@dataclass(frozen=True)
class Limits:
    """How much of a big run goes on the page (the rest is counted, not shown)."""

    rounds: int = 3  # RL: the latest sample rounds
    per_benchmark: int = 20  # eval: records per benchmark, failures first
    records: int = 6  # SFT: records shown
    per_kind: int = 2  # synth: records per trajectory kind


@dataclass
class Chart:
    title: str
    series: dict[str, list[tuple[float, float]]]


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class Group:
    """A titled run of trajectories: one RL round, one benchmark, one synth kind."""

    title: str
    note: str = ""
    tables: list[Table] = field(default_factory=list)
    trajectories: list[Trajectory] = field(default_factory=list)


@dataclass
class StageReport:
    stage: str
    name: str
    path: Path
    facts: list[tuple[str, str]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; a torn or corrupt line ends the read, never the report."""
    out: list[dict[str, Any]] = []
    try:
        for r in iter_jsonl(path):
            if isinstance(r, dict):
                out.append(r)
    except (OSError, ValueError):
        pass
    return out


def _stage_of(folder: Path) -> str | None:
    meta = read_json(folder / "meta.json")
    stage = meta.get("stage") if isinstance(meta, dict) else None
    return str(stage) if stage else None


def stage_dirs(run_dir: Path) -> list[tuple[str, Path]]:
    """(stage, folder) for a run directory itself, or for the stage runs inside a container.

    A container is a demo folder (its meta.json says `demo`) or any folder without one (e.g.
    `runs/`): stage runs are looked for one and two levels down (`rl/`, `rl/<run>/`), skipping
    symlinks so a `<recipe>-latest` link does not show a run twice.
    """
    stage = _stage_of(run_dir)
    if stage and stage not in CONTAINERS:
        return [(stage, run_dir)]
    found = [(stage, run_dir)] if stage else []
    for sub in _subdirs(run_dir):
        sub_stage = _stage_of(sub)
        if sub_stage:
            found.append((sub_stage, sub))
        else:
            found += [(s, d) for d in _subdirs(sub) if (s := _stage_of(d) or "")]
    rank = {s: i for i, s in enumerate(STAGE_ORDER)}
    return sorted(found, key=lambda sp: (rank.get(sp[0], len(rank)), sp[1].name))


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def meta_facts(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """The lines of meta.json worth a glance: status, times, versions."""
    from pixelctl.rundir import effective_status

    keys = ("status", "start", "end", "exit_status", "error", "pixelctl", "git_sha", "host")
    if meta.get("status"):  # `running` whose process is gone reads `killed`
        meta = {**meta, "status": effective_status(meta)}
    facts = [(k, str(meta[k])) for k in keys if meta.get(k) not in (None, "")]
    if meta.get("git_dirty"):
        facts.append(("git_dirty", "yes"))
    packages = meta.get("packages")
    if isinstance(packages, dict) and packages:
        facts.append(("packages", ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))))
    return facts


def last_per_step(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Metric lines with a `step`, keeping the last line per step (a resume recomputes steps)."""
    by_step: dict[float, dict[str, Any]] = {}
    for line in lines:
        step = line.get("step")
        if "event" in line or not isinstance(step, int | float) or isinstance(step, bool):
            continue
        by_step[step] = line
    return [by_step[s] for s in sorted(by_step)]


def curves(
    lines: list[dict[str, Any]], panels: list[tuple[str, list[str]]], x: str = "step"
) -> list[Chart]:
    """One chart per panel (title, metric keys) that has data; x is the step."""
    rows = last_per_step(lines)
    charts = []
    for title, keys in panels:
        series = {k: [(r[x], r[k]) for r in rows if k in r] for k in keys}
        series = {k: v for k, v in series.items() if v}
        if series:
            charts.append(Chart(title, series))
    return charts


def resolver(*bases: Path) -> Callable[[str], Path | None]:
    """Resolve a stored image path: absolute as is, relative against each base in turn."""

    def resolve(stored: str) -> Path | None:
        p = Path(stored)
        candidates = [p] if p.is_absolute() else [b / p for b in bases]
        return next((c for c in candidates if c.is_file()), None)

    return resolve


def fmt_num(v: Any, digits: int = 4) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return "—" if v is None else str(v)


def base_report(stage: str, path: Path) -> StageReport:
    meta = read_json(path / "meta.json")
    report = StageReport(stage, path.name, path)
    report.facts = meta_facts(meta) if isinstance(meta, dict) else []
    return report


def collect_other(path: Path, stage: str) -> StageReport:
    """A demo folder or a stage without a collector: meta facts and its `summary.json`."""
    report = base_report(stage, path)
    summary = read_json(path / "summary.json")
    if not isinstance(summary, dict):
        return report
    for key, value in summary.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            header = list(dict.fromkeys(k for row in value for k in row))
            rows = [[fmt_num(row.get(k)) for k in header] for row in value]
            report.tables.append(Table(f"summary: {key}", header, rows))
        elif not isinstance(value, dict | list):
            report.facts.append((key, fmt_num(value)))
    return report
