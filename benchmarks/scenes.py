"""Procedural scene drawing: one process (the baseline) against one per core, in the same run.

    .venv/bin/python benchmarks/scenes.py [--quick] [--recipe recipes/demo_cpu.yaml] [--n 240]

Draws `--n` train scenes of the recipe's `synth.procedural` (the demo's: 1024² canvases, 6-px
detail) into a temporary folder with `generate_split(workers=1)`, then with the default workers
(`scene_workers`), checks the two seed files are byte-identical and prints seconds, scenes per
second and the speed-up. Process start-up is inside the timed region: it is what a run pays.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelctl.config import load_recipe  # noqa: E402
from pixelctl.synth.pipeline import scene_settings  # noqa: E402
from pixelctl.synth.procedural import generate_split, scene_workers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "demo_cpu.yaml"))
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--quick", action="store_true", help="64 scenes (a smoke run)")
    args = ap.parse_args()
    n = 64 if args.quick else args.n
    recipe = load_recipe(args.recipe, []).recipe
    p = recipe.synth.procedural
    kw = scene_settings(recipe)  # what `pixelctl synth` draws
    auto = scene_workers(n)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for label, workers in (("1 process", 1), (f"{auto} processes", auto)):
            t0 = time.perf_counter()
            files.append(generate_split(Path(tmp) / label, "train", n, workers=workers, **kw))
            rows.append((label, time.perf_counter() - t0))
        same = files[0].read_bytes() == files[1].read_bytes()
    print(f"{n} scenes of {Path(args.recipe).name} ({p.canvas_min}-{p.canvas_max} px canvases)")
    print(f"{'drawn by':<12} {'seconds':>8} {'scenes/s':>9} {'vs 1':>6}")
    for label, dt in rows:
        print(f"{label:<12} {dt:>8.2f} {n / dt:>9.1f} {rows[0][1] / dt:>5.2f}x")
    print(f"seed files byte-identical: {same}")
    if not same:
        raise SystemExit("the parallel split differs from the one-process split")


if __name__ == "__main__":
    main()
