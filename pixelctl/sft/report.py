"""What the data loading kept and skipped, printed as rich tables (the driver process only)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pixelctl.sft.records import LoadResult, skip_summary

SHOW = 10  # skipped records listed one by one; the rest are counted


def show_data(result: LoadResult, console: Any) -> None:
    from rich.table import Table

    kinds = Counter(r.kind or "released" for r in result.records)
    table = Table(title="SFT data", show_header=True)
    table.add_column("source")
    table.add_column("kept", justify="right")
    for path in result.files:
        kept = sum(1 for r in result.records if r.source.startswith(f"{path}:"))
        table.add_row(str(path), str(kept))
    console.print(table)
    console.print("kept by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    if not result.skipped:
        console.print("skipped: none")
        return
    console.print(
        f"[yellow]skipped {len(result.skipped)} record(s)[/yellow] (all listed in rejects.jsonl):"
    )
    for reason, n in skip_summary(result.skipped).items():
        console.print(f"  {n:>6}  {reason}")
    for s in result.skipped[:SHOW]:
        console.print(f"  - {s}", markup=False, highlight=False)
    if len(result.skipped) > SHOW:
        console.print(f"  … and {len(result.skipped) - SHOW} more")
