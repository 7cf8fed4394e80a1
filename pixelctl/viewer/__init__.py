"""`pixelctl view RUN_DIR`: a static, offline HTML report of a run (or a demo folder of runs).

    from pixelctl.viewer import write_report
    index = write_report(Path("runs/rl/tiny_cpu-20261123-233257"))   # RUN_DIR/report/index.html

The page has one section per stage run: meta facts, curves as inline SVG, tables, and sampled
trajectories with the original image (requested boxes drawn in), each crop or frame set, the
reasoning text and, for RL, the reward split. Images are copied as bounded PNGs under
`<out>/assets/`; no network, no script. See docs/viewer.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pixelctl.viewer.collect import Limits, StageReport, collect_other, stage_dirs

__all__ = ["Limits", "collect_stages", "run_notes", "write_report"]
Size = Callable[[Path | None], tuple[int, int] | None]  # an image file's (width, height)


def collect_stages(run_dir: Path, limits: Limits, size: Size) -> list[StageReport]:
    """A StageReport per stage run found at `run_dir` (itself, or its sub-folders)."""
    from pixelctl.viewer.datasets import collect_sft, collect_synth
    from pixelctl.viewer.stages import collect_eval, collect_rl
    from pixelctl.viewer.trap import collect_trap

    collectors = {
        "trap": collect_trap,
        "rl": collect_rl,
        "eval": collect_eval,
        "sft": collect_sft,
        "synth": collect_synth,
    }
    out = []
    for stage, path in stage_dirs(run_dir):
        collector = collectors.get(stage)
        out.append(collector(path, limits, size) if collector else collect_other(path, stage))
    return out


def write_report(run_dir: Path, out: Path | None = None, *, limits: Limits | None = None) -> Path:
    """Render `run_dir` into `out` (default `run_dir/report`); returns the index.html path."""
    from pixelctl.viewer.assets import AssetWriter
    from pixelctl.viewer.render import page

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"{run_dir} is not a folder; pass a run directory (runs/<stage>/<name>)"
        )
    if not stage_dirs(run_dir):
        raise FileNotFoundError(
            f"{run_dir}: no pixelctl run in it (no meta.json here or one or two folders down); "
            "pass a run directory (runs/<stage>/<name>), a demo directory or runs/"
        )
    out = Path(out) if out is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    assets = AssetWriter(out)
    stages = collect_stages(run_dir, limits or Limits(), assets.size)
    html = page(f"pixelctl report — {run_dir.resolve().name}", stages, assets)
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(index)
    return index


def run_notes(run_dir: Path) -> list[str]:
    """One line per run under `run_dir` that did not finish well (killed, interrupted, failed),
    with its resume command: the rule `pixelctl.rundir.status_line` every command shares."""
    from pixelctl.rundir import status_line

    return [line for _, path in stage_dirs(Path(run_dir)) if (line := status_line(path))]
