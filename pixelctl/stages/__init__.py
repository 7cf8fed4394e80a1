"""The four stages. Each module satisfies `Stage`: `plan(loaded) -> str` (what a run would do,
for --dry-run) and `run(loaded, run_dir) -> None`; the command layer opens the run directory
around it, after `preflight(loaded)` (a refusal that needs no run directory)."""

from __future__ import annotations

import importlib
from typing import Any, Protocol, cast, runtime_checkable


@runtime_checkable
class Stage(Protocol):
    """The contract between the command layer and one stage module."""

    def plan(self, loaded: Any) -> str: ...

    def preflight(self, loaded: Any) -> None:
        """Refuse before any file is written (e.g. no GPU for a cluster engine)."""

    def run(self, loaded: Any, run_dir: Any) -> None: ...


def stage_module(stage: str) -> Stage:
    return cast(Stage, importlib.import_module(f"pixelctl.stages.{stage}"))
