"""Our numbers beside the paper's Table 1 (docs/method.md §8), as a rich table.

Paper columns are the published numbers (percent): Qwen2.5-VL-7B, Pixel Reasoner (RL) and
the SFT-only ablation. Our official column is the benchmark's metric (accuracy; ANLS for
InfographicsVQA); `paper-compat` is the authors' single binary matcher, the number their code
would have printed for the same responses. RaPR (ratio of pixel-space reasoning) is the share
of responses that called a tool at least once; the paper reports it for V* only (78.5%,
Appendix D.1).
"""

from __future__ import annotations

from typing import Any

PAPER_COLUMNS = ("Qwen2.5-VL-7B", "Pixel Reasoner", "SFT only")
PAPER_TABLE1: dict[str, tuple[float, float, float]] = {
    "vstar": (70.4, 84.3, 79.0),
    "tallyqa": (68.6, 73.8, 67.9),
    "mvbench": (63.8, 67.8, 59.0),
    "infovqa": (80.7, 84.0, 74.3),
}
TITLES = {
    "vstar": "V* Bench",
    "tallyqa": "TallyQA-Complex",
    "mvbench": "MVBench",
    "infovqa": "InfographicsVQA",
    "procedural": "procedural (held-out)",
}
ORDER = ("vstar", "tallyqa", "mvbench", "infovqa", "procedural")
PAPER_RAPR = {"vstar": 78.5}  # Pixel Reasoner, Appendix D.1


def _sort_key(name: str) -> tuple[int, str]:
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def rows(metrics: dict[str, dict[str, Any]]) -> list[list[str]]:
    """One row of strings per benchmark: name, n, metric, ours, paper-compat, paper columns,
    our RaPR, the paper's RaPR."""
    out = []
    for name in sorted(metrics, key=_sort_key):
        m = metrics[name]
        metric = m.get("metric") or ("anls" if "anls" in m else "accuracy")
        paper = PAPER_TABLE1.get(name)
        shown = [f"{v:.1f}" for v in paper] if paper else ["—"] * len(PAPER_COLUMNS)
        out.append(
            [
                TITLES.get(name, name),
                str(m["n"]),
                metric.upper() if metric == "anls" else metric,
                f"{m[metric]:.1f}",
                f"{m['paper_compat']:.1f}",
                *shown,
                f"{m['tool_use_rate']:.1f}" if "tool_use_rate" in m else "—",
                f"{PAPER_RAPR[name]:.1f}" if name in PAPER_RAPR else "—",
            ]
        )
    return out


def console() -> Any:
    """A rich console for the table: the terminal's width, or (a pipe, a file, a log) wide
    enough for every column, since rich would otherwise fold a table at 80 characters."""
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=max(out.width, 160))


def render(metrics: dict[str, dict[str, Any]], title: str = "pixelctl eval vs. paper Table 1"):
    """A `rich.table.Table` of `rows(metrics)`."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("benchmark", "n", "metric", "ours", "ours paper-compat"):
        table.add_column(col, justify="left" if col in ("benchmark", "metric") else "right")
    for col in PAPER_COLUMNS:
        table.add_column(f"paper: {col}", justify="right", style="dim")
    table.add_column("ours RaPR", justify="right")
    table.add_column("paper RaPR", justify="right", style="dim")
    for row in rows(metrics):
        table.add_row(*row)
    return table
