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

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "demo_cpu.yaml"
NAME = RECIPE.stem  # run directories are <NAME>-<time>, chained through <NAME>-latest
UNTRAINED = ["eval.checkpoint=null"]  # the recipe's own model, as built

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
    synth = demo_dir / "synth" / f"{NAME}-latest"
    return [
        f"launch.runs_root={demo_dir}",
        f"sft.data=[{synth}]",
        f"rl.data=[{synth}]",
        f"rl.init_from={demo_dir / 'sft' / f'{NAME}-latest'}",
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


def seed_overrides(seed: int) -> list[str]:
    """A demo seed reseeds training (SFT order, RL sampling and replay); the scenes and the
    held-out split stay the same, so seeds differ only by what training made of one data set."""
    return [f"sft.seed={seed}", f"rl.seed={seed}"]


def run_demo(
    root: Path, size: str = "full", console: Console | None = None, *, seed: int = 0
) -> Path:
    console = console or Console()
    base = [*SIZES[size], *seed_overrides(seed)]
    demo = RunDir.create(
        root, "demo", f"{NAME}-{size}", {"size": size, "seed": seed, "overrides": base}
    )
    chain = chain_overrides(demo.path)
    ov = [*base, *chain]
    steps: list[dict[str, Any]] = []
    with running(demo):
        t0 = time.perf_counter()
        _stage("synth", ov)
        evaluate = [
            ("untrained", UNTRAINED),
            ("after sft", [f"eval.checkpoint={demo.path / 'sft' / f'{NAME}-latest'}"]),
            ("after rl", [f"eval.checkpoint={demo.path / 'rl' / f'{NAME}-latest'}"]),
        ]
        for label, extra in evaluate:
            if label == "after sft":
                _stage("sft", ov)
            if label == "after rl":
                _stage("rl", ov)
            run = _stage("eval", [*ov, *extra], tag=label.replace(" ", "-"))
            steps.append({"stage": label, "eval_run": str(run.path), **eval_summary(run.path)})
            demo.log_metrics({"stage": label, **steps[-1]})
        summary = {
            "size": size,
            "seed": seed,
            "seconds": round(time.perf_counter() - t0, 1),
            "stages": steps,
        }
        (demo.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    report = write_report(demo.path)  # after meta.json says how the demo ended, not "running"
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


# ----------------------------------------------------------------------------- the learning trap
TRAP_ALPHAS = (0.5, 0.0)
TRAP_SEEDS = (0, 1, 2)
TRAP_KEYS = (
    "rapr",
    "accuracy",
    "calls_per_rollout",
    "well_formed_calls",
    "curiosity",
    "rapr_attempts",
    "rapr_executed",
)


def condition_name(alpha: float) -> str:
    return f"curiosity on (α={alpha:g})" if alpha > 0 else "curiosity off (α=0)"


def round_rows(rl_run: Path) -> list[dict[str, float]]:
    """One row per RL round (its last metrics line), with the trap's keys."""
    last: dict[int, dict[str, Any]] = {}
    for m in iter_jsonl(rl_run / "metrics.jsonl"):
        if "round" in m:
            last[int(m["round"])] = m
    return [
        {"round": r, **{k: float(last[r][k]) for k in TRAP_KEYS if k in last[r]}}
        for r in sorted(last)
    ]


def run_trap(
    root: Path,
    size: str = "full",
    console: Console | None = None,
    *,
    seeds: tuple[int, ...] = TRAP_SEEDS,
    alphas: tuple[float, ...] = TRAP_ALPHAS,
    evaluate: bool = True,
) -> Path:
    """The paper's Figure 2 at tiny scale: RL from one SFT checkpoint with curiosity on and
    off, `len(seeds)` seeds each; per-round curves in `trap.json`, `trap.svg` and the report.
    With `evaluate`, the untrained, SFT and every RL model are also scored on the held-out split
    (`heldout` in trap.json): the demo's table over seeds, from one SFT checkpoint."""
    from pixelctl.viewer.trap import trap_summary, trap_svg

    console = console or Console()
    base = SIZES[size]
    trap = RunDir.create(
        root,
        "trap",
        f"{NAME}-{size}",
        {"size": size, "seeds": list(seeds), "alphas": list(alphas), "overrides": base},
    )
    ov = [*base, *chain_overrides(trap.path)]
    with running(trap):
        t0 = time.perf_counter()
        _stage("synth", ov)
        heldout: dict[str, Any] = {}
        if evaluate:
            run = _stage("eval", [*ov, *UNTRAINED], tag="untrained")
            heldout["untrained"] = eval_summary(run.path)
        sft = _stage("sft", ov)
        if evaluate:
            run = _stage("eval", [*ov, f"eval.checkpoint={sft.path}"], tag="after-sft")
            heldout["after sft"] = eval_summary(run.path)
        runs: dict[str, dict[str, list[dict[str, float]]]] = {}
        for alpha in alphas:
            for seed in seeds:
                tag = f"alpha{alpha:g}-seed{seed}"
                run = _stage("rl", [*ov, f"rl.reward.alpha={alpha}", f"rl.seed={seed}"], tag=tag)
                rows = round_rows(run.path)
                runs.setdefault(condition_name(alpha), {})[str(seed)] = rows
                record: dict[str, Any] = {"alpha": alpha, "seed": seed, "rl_run": str(run.path)}
                if evaluate:
                    ev = _stage("eval", [*ov, f"eval.checkpoint={run.path}"], tag=f"rl-{tag}")
                    after = heldout.setdefault("after rl", {}).setdefault(condition_name(alpha), {})
                    after[str(seed)] = record["heldout"] = eval_summary(ev.path)
                trap.log_metrics(record)
        data = {
            "size": size,
            "seconds": round(time.perf_counter() - t0, 1),
            "runs": runs,
            "heldout": heldout,
        }
        data["final"] = trap_summary(runs)
        (trap.path / "trap.json").write_text(json.dumps(data, indent=2) + "\n")
        (trap.path / "trap.svg").write_text(trap_svg(runs))
    report = write_report(trap.path)
    show_trap(data, console)
    console.print(f"trap directory: {trap.path}")
    console.print(f"picture: {trap.path / 'trap.svg'}  report: {report}")
    return trap.path


def show_trap(data: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"The learning trap: the last RL round, mean ± sd over seeds ({data['seconds']} s)"
    )
    table.add_column("condition")
    for key in TRAP_KEYS:
        table.add_column(key.replace("_", " "), justify="right")
    for name, cells in data["final"].items():
        table.add_row(name, *(cells.get(k, "—") for k in TRAP_KEYS))
    console.print(table)
    rows = heldout_rows(data.get("heldout", {}))
    if rows:
        held = Table(title="Held-out split: mean ± sd over RL seeds (one SFT checkpoint)")
        for col in ("stage", *HELDOUT_KEYS, "n"):
            held.add_column(col.replace("_", " "), justify="left" if col == "stage" else "right")
        for row in rows:
            held.add_row(row["stage"], *(row[k] for k in HELDOUT_KEYS), row["n"])
        console.print(held)


HELDOUT_KEYS = ("well_formed_calls", "accuracy", "rapr", "calls_per_rollout")


def heldout_rows(heldout: dict[str, Any]) -> list[dict[str, str]]:
    """The held-out table of a trap run: one row per stage, RL rows as mean ± sd over seeds."""
    import statistics

    def cells(summaries: list[dict[str, Any]]) -> dict[str, str]:
        out = {}
        for k in HELDOUT_KEYS:
            vals = [float(s[k]) for s in summaries]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            out[k] = f"{statistics.fmean(vals):.3f}" + (f" ± {sd:.3f}" if len(vals) > 1 else "")
        out["n"] = str(summaries[0]["n"]) + (
            f" × {len(summaries)} seeds" if len(summaries) > 1 else ""
        )
        return out

    rows = [
        {"stage": stage, **cells([heldout[stage]])}
        for stage in ("untrained", "after sft")
        if stage in heldout
    ]
    for cond, seeds in heldout.get("after rl", {}).items():
        rows.append({"stage": f"after rl, {cond}", **cells(list(seeds.values()))})
    return rows
