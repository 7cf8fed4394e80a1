"""What token-in/out costs: one round of rollouts with the hf backend in text mode (re-render and
re-tokenize the conversation every turn) vs token_io mode (continue from the traced ids, keep
the sampling-time log-probs), on the tiny model and procedural scenes, same seed and sampling.
Every rollout makes a scripted tool call first, so the second turn continues a traced sequence
with an observation image in it. Prints seconds per round and the ratio token_io / text.

    .venv/bin/python benchmarks/token_io.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelctl.agent import Generation, Rollout, Sampling, SamplingPlan, run_batch
from pixelctl.backends.hf import HFGenerator
from pixelctl.cli.launch import execute
from pixelctl.config import load_recipe
from pixelctl.models.resolve import resolve_model
from pixelctl.prompt import format_tool_call
from pixelctl.queries import load_queries

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny_cpu.yaml"
CALL = "Look closer. " + format_tool_call(
    "crop_image_normalized", {"bbox_2d": [0.4, 0.4, 0.6, 0.6], "target_image": 1}
)


def scripted_first_turn(gen: HFGenerator):
    tok = gen.processor.tokenizer
    ids = (*tok.encode(CALL), tok.eos_token_id)

    def generate(convs, samplings, traces=None):
        if all(len(c) == 2 for c in convs):  # the first turn: the same call everywhere
            if not gen.token_io:
                return [Generation(CALL, 0, len(ids)) for _ in convs]
            frags = [gen.fragment(c, None) for c in convs]
            return [Generation(CALL, 0, len(ids), tuple(f), v, ids) for f, v in frags]
        return gen(convs, samplings, traces) if gen.token_io else gen(convs, samplings)

    generate.token_io = gen.token_io
    return generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n, tokens, repeats = (8, 16, 1) if args.quick else (32, 64, 2)
    with tempfile.TemporaryDirectory() as tmp:
        ov = [
            f"launch.runs_root={tmp}",
            f"synth.procedural.n_train={n}",
            "synth.procedural.n_eval=0",
            f"synth.n_pixel_space={n}",
            "synth.n_text_only=0",
        ]
        loaded = load_recipe(RECIPE, ov)
        synth = execute("synth", loaded)
        queries = load_queries([synth.path]).queries[:n]
        settings = loaded.recipe.executor.settings("train")
        model = resolve_model(loaded.recipe.model.name_or_path)
        plan = SamplingPlan(Sampling(1.0, 0.95, tokens))
        times = {}
        for mode in ("text", "token_io"):
            gen = HFGenerator(model, seed=0, batch_size=64, token_io=mode == "token_io")
            best = float("inf")
            for _ in range(repeats):
                rollouts = [Rollout(q, settings=settings, plan=plan) for q in queries]
                t = time.perf_counter()
                run_batch(rollouts, scripted_first_turn(gen))
                best = min(best, time.perf_counter() - t)
            times[mode] = best
    print(f"{n} rollouts, a scripted crop then up to {tokens} sampled tokens (best of {repeats})")
    for mode, t in times.items():
        print(f"  {mode:<9} {t:7.2f} s")
    print(f"ratio token_io / text: {times['token_io'] / times['text']:.2f}")


if __name__ == "__main__":
    main()
