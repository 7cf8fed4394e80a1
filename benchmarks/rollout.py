"""The time split of an RL step on the tiny model: generation, executor, reward, update.

Runs a few rounds of the local engine on procedural scenes (synth's template writer) and prints
where the time goes, per round and in total. The executor and the reward together should stay
under 5% of a step. As a same-run comparison, the rounds are repeated with every rollout forced
to make tool calls (a scripted first turn), the executor's worst realistic case, and with the
paper-compat grader unbounded (in-process) instead of in its time-bounded helper processes.

    .venv/bin/python benchmarks/rollout.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelctl.agent import Generation
from pixelctl.cli.launch import execute
from pixelctl.config import load_recipe
from pixelctl.engines.local import loop
from pixelctl.grading import paper_compat_score
from pixelctl.models.resolve import resolve_model
from pixelctl.prompt import format_tool_call
from pixelctl.queries import load_queries
from pixelctl.rundir import RunDir

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny_cpu.yaml"
PHASES = ("generation", "executor", "reward", "update")


def force_tool_calls(engine: loop.LocalEngine) -> None:
    """First turn: a crop of the top-left quarter; later turns: the model as it is. The engine
    is token-in/out, so the scripted turn comes with its ids (fed as the backend feeds them)."""
    real = engine.generate
    tok = real.processor.tokenizer
    call = format_tool_call(
        "crop_image_normalized", {"bbox_2d": [0.1, 0.1, 0.5, 0.5], "target_image": 1}
    )
    text = "Look closer. " + call
    ids = (*tok.encode(text), tok.eos_token_id)

    def generate(convs, samplings, traces):
        out = real(convs, samplings, traces=traces)
        gens = []
        for conv, trace, g in zip(convs, traces, out, strict=True):
            if trace is None:  # the first turn
                fed, vis = real.fragment(conv, None)
                g = Generation(text, g.prompt_tokens, len(ids), tuple(fed), vis, ids)
            gens.append(g)
        return gens

    generate.token_io = True
    engine.generate = generate


def measure(recipe, data, model, root: Path, rounds: int, variant: str) -> dict[str, float]:
    run = RunDir.create(root, "rl", "bench", {}, tag=variant)
    engine = loop.LocalEngine(recipe, run, data, model)
    if variant == "tool calls":
        force_tool_calls(engine)
    if variant == "unbounded grading":
        loop.paper_compat_score = lambda r, a, training: paper_compat_score(
            r, a, training=training, timeout=None
        )
    totals = dict.fromkeys(PHASES, 0.0)
    try:
        for r in range(rounds):
            record = engine.run_round(r)[-1]
            for p in PHASES:
                totals[p] += record[f"time_{p}"]
    finally:
        loop.paper_compat_score = paper_compat_score
    return totals


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds = 2 if args.quick else 4
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ov = [
            f"launch.runs_root={root}",
            "synth.procedural.n_train=16",
            "synth.procedural.n_eval=0",
            "synth.n_pixel_space=12",
            "synth.n_text_only=4",
        ]
        synth = execute("synth", load_recipe(RECIPE, ov))
        recipe = load_recipe(RECIPE, [*ov, f"rl.data=[{synth.path}]", "rl.init_from=null"]).recipe
        data = load_queries([synth.path])
        model = resolve_model(recipe.model.name_or_path)
        rows = {}
        for variant in ("as trained", "tool calls", "unbounded grading"):
            rows[variant] = measure(recipe, data, model, root, rounds, variant)
    print(
        f"\n{rounds} rounds × {recipe.rl.rollout.prompts_per_round} prompts × "
        f"{recipe.rl.rollout.n_samples} samples on the tiny model (seconds, share of the step)"
    )
    print(f"{'variant':<20}" + "".join(f"{p:>18}" for p in PHASES) + f"{'exec+reward':>14}")
    for variant, t in rows.items():
        total = sum(t.values())
        cells = "".join(f"{t[p]:>9.2f} ({100 * t[p] / total:4.1f}%)" for p in PHASES)
        share = 100 * (t["executor"] + t["reward"]) / total
        print(f"{variant:<20}{cells}{share:>13.1f}%")
    base = rows["as trained"]
    print(
        "\nratios vs 'as trained': "
        + json.dumps({v: round(sum(t.values()) / sum(base.values()), 2) for v, t in rows.items()})
    )


if __name__ == "__main__":
    main()
