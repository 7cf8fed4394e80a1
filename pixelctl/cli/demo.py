"""`pixelctl demo`: the whole pipeline on the tiny model and procedural scenes, on this machine.

synth (template writer) → eval of the untrained model → sft → eval → rl (local engine,
curiosity on) → eval, all in one demo directory whose subfolders are ordinary stage run
directories (`synth/`, `sft/`, `rl/`, `eval/`), chained through their `-latest` links. It ends
with a table of what changed at each stage — well-formed tool calls, accuracy, RaPR (rollouts
that used a tool) and calls per rollout, measured on the held-out split — and `summary.json`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pixelctl.cli.launch import execute
from pixelctl.config import load_recipe
from pixelctl.rundir import RunDir, iter_jsonl, running
from pixelctl.viewer import write_report

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "tiny_cpu.yaml"

# `small` is what CI runs: the same stages with fewer scenes, steps and rounds.
SIZES: dict[str, list[str]] = {
    "full": [],
    "small": [
        "synth.procedural.n_train=12",
        "synth.procedural.n_eval=6",
        "synth.n_pixel_space=8",
        "synth.n_text_only=4",
        "sft.epochs=1.0",
        "rl.max_rounds=2",
        "rl.rollout.max_new_tokens=48",
        "eval.max_new_tokens=48",
    ],
}


def chain_overrides(demo_dir: Path) -> list[str]:
    """Point every stage at the previous stage's run inside the demo directory."""
    synth = demo_dir / "synth" / "tiny_cpu-latest"
    return [
        f"launch.runs_root={demo_dir}",
        f"sft.data=[{synth}]",
        f"rl.data=[{synth}]",
        f"rl.init_from={demo_dir / 'sft' / 'tiny_cpu-latest'}",
        f"eval.benchmarks=[{{name: procedural, path: {synth / 'eval.jsonl'}}}]",
    ]


def eval_summary(run: Path) -> dict[str, float]:
    """The demo's four numbers from an eval run's per-sample records."""
    records = list(iter_jsonl(run / "samples.jsonl"))
    calls = [c for r in records for c in r["calls"]]
    n = max(len(records), 1)
    return {
        "well_formed_calls": round(sum(c["name"] is not None for c in calls) / len(calls), 3)
        if calls
        else 0.0,
        "accuracy": round(sum(r["official"] for r in records) / n, 3),
        "rapr": round(sum(r["n_calls"] > 0 for r in records) / n, 3),
        "calls_per_rollout": round(sum(r["n_calls"] for r in records) / n, 3),
        "n": len(records),
    }


def _stage(stage: str, overrides: list[str], *, tag: str | None = None) -> RunDir:
    loaded = load_recipe(RECIPE, overrides)
    argv = ["pixelctl", stage, str(RECIPE), *overrides] + (["--tag", tag] if tag else [])
    return execute(stage, loaded, tag=tag, argv=argv)


def run_demo(root: Path, size: str = "full", console: Console | None = None) -> Path:
    console = console or Console()
    base = SIZES[size]
    demo = RunDir.create(root, "demo", f"tiny_cpu-{size}", {"size": size, "overrides": base})
    chain = chain_overrides(demo.path)
    ov = [*base, *chain]
    steps: list[dict[str, Any]] = []
    with running(demo):
        t0 = time.perf_counter()
        _stage("synth", ov)
        evaluate = [
            ("untrained", ["model.name_or_path=builtin:tiny-qwen2.5-vl", "eval.checkpoint=null"]),
            ("after sft", [f"eval.checkpoint={demo.path / 'sft' / 'tiny_cpu-latest'}"]),
            ("after rl", [f"eval.checkpoint={demo.path / 'rl' / 'tiny_cpu-latest'}"]),
        ]
        for label, extra in evaluate:
            if label == "after sft":
                _stage("sft", ov)
            if label == "after rl":
                _stage("rl", ov)
            run = _stage("eval", [*ov, *extra], tag=label.replace(" ", "-"))
            steps.append({"stage": label, "eval_run": str(run.path), **eval_summary(run.path)})
            demo.log_metrics({"stage": label, **steps[-1]})
        summary = {"size": size, "seconds": round(time.perf_counter() - t0, 1), "stages": steps}
        (demo.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        report = write_report(demo.path)
    show_summary(summary, console)
    console.print(f"demo directory: {demo.path}")
    console.print(f"report: {report}")
    return demo.path


def show_summary(summary: dict[str, Any], console: Console) -> None:
    table = Table(title=f"What each stage changed (held-out split, {summary['seconds']} s)")
    for col in ("stage", "well-formed tool calls", "accuracy", "RaPR", "calls per rollout", "n"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for s in summary["stages"]:
        table.add_row(
            s["stage"],
            f"{s['well_formed_calls']:.2f}",
            f"{s['accuracy']:.2f}",
            f"{s['rapr']:.2f}",
            f"{s['calls_per_rollout']:.2f}",
            str(s["n"]),
        )
    console.print(table)
