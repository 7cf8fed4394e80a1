"""The CPU SFT step of the demo recipe, with TRL's fused LM head scoring only the trained
positions (`pixelctl.sft.hf_trainer.labelled_positions_only`, as `pixelctl sft` runs) against
TRL's CPU default, which scores every position, in the same run.

Synthesizes a few procedural scenes with recipes/demo_cpu.yaml, trains the demo model on them
through the real `SFTTrainer` for N steps each way and reads the step times from metrics.jsonl
(the first step, with its warm-up, is left out). Also prints the share of positions trained.

    .venv/bin/python benchmarks/sft_step.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixelctl.cli.launch import execute
from pixelctl.config import load_recipe
from pixelctl.sft import hf_trainer

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "demo_cpu.yaml"


def step_times(run_dir: Path) -> list[float]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    times = [x["time"] for x in lines if "step" in x and "loss" in x]
    return [b - a for a, b in itertools.pairwise(times[1:])]  # the first step warms up


def trained_share(run_dir: Path) -> float:
    """Labelled positions / all positions over the run's first batches (the collator's labels)."""
    from pixelctl.models.resolve import resolve_model
    from pixelctl.sft.collator import PixelCollator
    from pixelctl.sft.data import executor_settings, load_processor
    from pixelctl.sft.records import read_frozen

    recipe = load_recipe(run_dir / "config.yaml", []).recipe
    processor = load_processor(recipe, resolve_model(recipe.model.name_or_path))
    collate = PixelCollator(processor, mask=recipe.sft.mask, settings=executor_settings(recipe))
    out = collate([r.to_row() for r in read_frozen(run_dir)[:16]])
    return float((out["labels"] != -100).sum() / out["attention_mask"].sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    steps = 8 if args.quick else 40
    with tempfile.TemporaryDirectory() as tmp:
        ov = [
            f"launch.runs_root={tmp}",
            "synth.procedural.n_train=48",
            "synth.procedural.n_eval=0",
            "synth.n_pixel_space=42",
            "synth.n_text_only=6",
        ]
        synth = execute("synth", load_recipe(RECIPE, ov))
        sft_ov = [*ov, f"sft.data=[{synth.path}]", f"sft.max_steps={steps}", "sft.save_steps=1000"]
        rows = {}
        compact = hf_trainer.labelled_positions_only
        for variant in ("every position (TRL on CPU)", "labelled positions only"):
            if variant.startswith("every"):
                hf_trainer.labelled_positions_only = contextlib.nullcontext
            try:
                run = execute("sft", load_recipe(RECIPE, sft_ov))
            finally:
                hf_trainer.labelled_positions_only = compact
            rows[variant] = step_times(run.path)
        share = trained_share(run.path)
    print(
        f"\n{steps} SFT steps of 4 records each way on the demo model (same data, same order); "
        f"positions trained: {100 * share:.1f}%"
    )
    print(f"{'variant':<30}{'median s/step':>15}{'mean s/step':>13}")
    for variant, t in rows.items():
        print(f"{variant:<30}{statistics.median(t):>15.3f}{statistics.mean(t):>13.3f}")
    base = statistics.median(rows["every position (TRL on CPU)"])
    ratio = {v: round(statistics.median(t) / base, 2) for v, t in rows.items()}
    print("\nratios of the median step vs TRL's CPU default: " + json.dumps(ratio))


if __name__ == "__main__":
    main()
