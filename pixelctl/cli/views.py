"""Rich rendering for `validate` and `env` (kept apart so the logic stays testable as data)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from pixelctl.cli.derived import Derived
from pixelctl.config.loader import LoadedRecipe
from pixelctl.config.report import changes


def _short(value: Any, width: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def show_validation(
    loaded: LoadedRecipe,
    derived: list[Derived],
    problems: list[str],
    stage: str | None,
    console: Console | None = None,
) -> None:
    console = console or Console()
    where = str(loaded.path) if loaded.path else "recipe"
    console.print(f"[green]✓[/green] {where}: schema valid")
    rows = changes(loaded, stage)
    table = Table(title="Values that differ from the defaults", title_justify="left")
    for col in ("key", "value", "default", "from"):
        table.add_column(col, overflow="fold")
    for ch in rows:
        table.add_row(ch.key, _short(ch.value), _short(ch.default), ch.source)
    console.print(table if rows else "All values are the defaults (the paper's 7B run).")
    numbers = Table(title="Derived numbers", title_justify="left")
    for col in ("stage", "quantity", "value", "how"):
        numbers.add_column(col, overflow="fold")
    for d in derived:
        if stage is None or d.stage == stage:
            value = f"{d.value:,}" if isinstance(d.value, int) else str(d.value)
            numbers.add_row(d.stage, d.name, value, d.how)
    console.print(numbers)
    for p in problems:
        console.print(f"[red]✗[/red] {p}")


def show_env(info: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    dirty = " (uncommitted changes)" if info["git_dirty"] else ""
    console.print(
        f"pixelctl {info['pixelctl']}  python {info['python']}  "
        f"git {info['git_sha'] or 'n/a'}{dirty}"
    )
    dev = info["devices"]
    console.print(f"devices: {dev['cpus']} CPUs, GPUs: {', '.join(dev['gpus']) or 'none'}")
    table = Table(title="Pinned packages", title_justify="left")
    for col in ("package", "pinned", "installed", ""):
        table.add_column(col)
    for name, pin in info["pins"].items():
        mark = "[green]✓[/green]" if pin["ok"] else "[red]✗[/red]"
        table.add_row(name, pin["wanted"], pin["installed"] or "missing", mark)
    console.print(table)
