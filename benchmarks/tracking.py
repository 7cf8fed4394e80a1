"""What tracking adds per step and per query, against the work it rides on (same run, ratios).

1. metrics: one local-engine metrics line (~30 numbers) to metrics.jsonl (`RunDir.log_metrics`,
   flushed and fsynced: the baseline) vs the same line also to TensorBoard (`Tracker.scalars`);
   and one round's 4 rollout images (`rollout_pictures` + `Tracker.images`) per round.
2. text-only sampling: grading k=8 sampled answers of a query with eval's graders and the
   cache round trip, vs the scripted generation through the real openai backend on a loopback
   server (a lower bound for a real model: the model costs more, never less).

    .venv/bin/python benchmarks/tracking.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.helpers

from PIL import Image

from pixelctl.config import load_recipe
from pixelctl.rundir import RunDir
from pixelctl.tracking import Tracker

LINE = {f"metric_{i}": 0.001 * i for i in range(30)} | {"step": 1, "round": 1}


def per_call(fn, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t) / n


def bench_metrics(root: Path, n: int) -> list[tuple[str, float]]:
    from pixelctl.engines.local.samples import rollout_pictures

    recipe = load_recipe(None, [], raw={"launch": {"runs_root": str(root)}}).recipe
    run = RunDir.create(root, "rl", "bench", recipe.model_dump(mode="json"))
    base = per_call(lambda i: run.log_metrics({**LINE, "step": i}), n)
    tracker = Tracker(recipe.logging, run.path)
    tb = per_call(lambda i: tracker.scalars({**LINE, "step": i}, i), n)
    Image.new("RGB", (1024, 768), "white").save(root / "in.png")
    rec = {
        "inputs": [str(root / "in.png")],
        "messages": [
            {"role": "user", "content": [{"type": "image", "image": str(root / "in.png")}]}
        ],
        "calls": [],
    }
    (root / "round.jsonl").write_text((json.dumps(rec) + "\n") * 4)

    def images(i: int) -> None:
        tracker.images("rollouts", rollout_pictures(root / "round.jsonl", root, "strict"), i)

    img = per_call(images, max(3, n // 50))
    tracker.close()
    return [
        ("metrics.jsonl line (baseline)", base),
        ("+ TensorBoard scalars", tb),
        ("4 rollout images (once a round)", img),
    ]


def bench_sampling(root: Path, queries: int) -> list[tuple[str, float]]:
    from pixelctl.synth.pipeline import run_synth
    from tests.helpers.fake_openai_server import FakeOpenAIServer
    from tests.test_synth_support import small_recipe

    with FakeOpenAIServer(reply=lambda body: "It reads \\boxed{3}") as srv:
        synth = {
            "n_pixel_space": 0,
            "n_text_only": queries,
            "procedural": {"n_train": queries, "n_eval": 0},
            "text_only": {"source": "model", "backend": "openai", "base_url": srv.base_url,
                          "model": "m", "k": 8, "queries_per_call": 8},
        }  # fmt: skip
        recipe = small_recipe(root, synth=synth)
        run_synth(recipe, root / "warm")  # scenes generated, imports warm
        t = time.perf_counter()
        run_synth(recipe, root / "first")
        first = (time.perf_counter() - t) / queries
        t = time.perf_counter()
        run_synth(recipe, root / "first")  # every answer from the cache: grading + records
        rerun = (time.perf_counter() - t) / queries
    return [("sample 8 + grade + record (baseline)", first), ("re-run from the cache", rerun)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = bench_metrics(root / "m", 100 if args.quick else 1000)
        rows += bench_sampling(root / "s", 8 if args.quick else 32)
    base = {0: rows[0][1], 3: rows[3][1]}
    print(f"{'what':<40} {'ms':>9} {'ratio':>7}")
    for i, (name, sec) in enumerate(rows):
        ref = base[0] if i < 3 else base[3]
        print(f"{name:<40} {sec * 1e3:>9.3f} {sec / ref:>7.2f}")


if __name__ == "__main__":
    main()
