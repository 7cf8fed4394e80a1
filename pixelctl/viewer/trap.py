"""The learning-trap section (`pixelctl demo --trap`): per-round curves of RL with curiosity on
and off, the mean over seeds with each seed's run drawn faintly, and the final table.

`trap_svg` is one picture (a grid of `svg_line_chart` panels) for the report and the docs;
`collect_trap` turns a trap directory's `trap.json` into a report section.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from pixelctl.viewer import collect as c
from pixelctl.viewer.svg import svg_line_chart

PANELS = (
    ("RaPR (rollouts that call a tool)", "rapr"),
    ("accuracy (training rollouts)", "accuracy"),
    ("calls per rollout", "calls_per_rollout"),
    ("well-formed calls", "well_formed_calls"),
    ("curiosity bonus (mean)", "curiosity"),
    ("RaPR: attempts vs executed calls", "rapr_attempts|rapr_executed"),
)
Runs = dict[str, dict[str, list[dict[str, float]]]]  # condition → seed → per-round rows


def mean_curve(seeds: dict[str, list[dict[str, float]]], key: str) -> list[tuple[float, float]]:
    """Per round, the mean over the seeds that logged `key` in that round."""
    by_round: dict[float, list[float]] = {}
    for rows in seeds.values():
        for row in rows:
            if key in row:
                by_round.setdefault(row["round"], []).append(row[key])
    return [(r, statistics.fmean(v)) for r, v in sorted(by_round.items())]


def panel_series(runs: Runs, spec: str) -> dict[str, list[tuple[float, float]]]:
    keys = spec.split("|")
    out = {}
    for name, seeds in runs.items():
        for key in keys:
            label = name if len(keys) == 1 else f"{name}: {key.split('_')[-1]}"
            out[label] = mean_curve(seeds, key)
    return out


def trap_svg(runs: Runs, *, columns: int = 3, width: int = 420, height: int = 240) -> str:
    """All panels in one SVG: mean over seeds per condition, one line per condition."""
    charts = [
        svg_line_chart(
            panel_series(runs, spec), title=title, x_label="round", width=width, height=height
        )
        for title, spec in PANELS
    ]
    rows = -(-len(charts) // columns)
    W, H = columns * width, rows * height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
        f'<rect width="{W}" height="{H}" fill="#fff"/>',
    ]
    for i, chart in enumerate(charts):
        x, y = (i % columns) * width, (i // columns) * height
        parts.append(f'<g transform="translate({x},{y})">{chart}</g>')
    return "".join(parts) + "</svg>\n"


def trap_summary(runs: Runs) -> dict[str, dict[str, str]]:
    """The last round of each run, as "mean ± sd (n seeds)" per condition and key."""
    out: dict[str, dict[str, str]] = {}
    for name, seeds in runs.items():
        finals = [rows[-1] for rows in seeds.values() if rows]
        cells = {}
        for key in {k for f in finals for k in f if k != "round"}:
            vals = [f[key] for f in finals if key in f]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells[key] = f"{statistics.fmean(vals):.2f} ± {sd:.2f}"
        out[name] = cells
    return out


def collect_trap(path: Path, limits: c.Limits, size: Any) -> c.StageReport:
    report = c.base_report("trap", path)
    data = c.read_json(path / "trap.json")
    if not data:
        report.notes.append("no trap.json yet: the trap run has not finished")
        return report
    runs: Runs = data["runs"]
    report.charts = [c.Chart(title, panel_series(runs, spec)) for title, spec in PANELS]
    keys = [p[1] for p in PANELS if "|" not in p[1]] + ["rapr_attempts", "rapr_executed"]
    report.tables.append(
        c.Table(
            "the last RL round, mean ± sd over seeds",
            ["condition", *keys],
            [[name, *(cells.get(k, "—") for k in keys)] for name, cells in data["final"].items()],
        )
    )
    report.facts.append(("seconds", str(data.get("seconds", ""))))
    report.facts.append(("runs", json.dumps({k: sorted(v) for k, v in runs.items()})))
    return report
