"""Eval overhead per sample: everything but model time (load, executor, prompt, scoring, records).

Runs the eval loop over generated fixtures of all four benchmarks (official layouts, eval
pixel bounds of the 7B recipe unless --small; ~2 Mpx originals) in one run, the executor's
image cache cleared before each, after one unmeasured warm-up pass:
  1. a scripted model that costs nothing (one crop / frame selection, then an answer):
     the pure overhead of a two-turn sample (the baseline);
  2. the tiny Qwen2.5-VL through `hf` (CPU), time inside `generate` measured, so
     overhead = wall time − model time (the random model rarely calls a tool: one turn);
  3. a scripted tool call, then the tiny model: a realistic two-turn sample with real model
     calls;
  4. as 3 with paper-compat graded in-process instead of in the time-bounded helper.
The table gives seconds per sample and the overhead as a share of wall time; ratios compare
with the scripted baseline.

    .venv/bin/python benchmarks/eval_overhead.py [--quick] [--small]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.helpers fixtures

from pixelctl.agent import Generation
from pixelctl.evaluation.chunks import RunSettings
from pixelctl.evaluation.loaders import load_source
from pixelctl.evaluation.runner import run_eval
from pixelctl.executor import ExecutorSettings, PixelBounds
from pixelctl.prompt import format_tool_call
from tests.helpers import eval_fixtures as fx

PX = 28 * 28
CROP = format_tool_call(
    "crop_image_normalized", {"bbox_2d": [0.2, 0.2, 0.6, 0.6], "target_image": 1}
)
FRAMES = format_tool_call("select_frames", {"target_frames": [2, 5, 9]})


def scripted(convs, samplings):
    out = []
    for conv in convs:
        turns = sum(m["role"] == "assistant" for m in conv)
        video = any(i["type"] == "video" for i in conv[1]["content"])
        text = ("I look closer. " + (FRAMES if video else CROP)) if turns == 0 else "\\boxed{B}"
        out.append(Generation(text, 100, 10))
    return out


class Timed:
    """Wrap a generate function and add up the seconds spent inside it."""

    def __init__(self, generate):
        self.generate, self.seconds = generate, 0.0

    def __call__(self, convs, samplings):
        t = time.perf_counter()
        try:
            return self.generate(convs, samplings)
        finally:
            self.seconds += time.perf_counter() - t


class ToolThenModel:
    """First turn scripted (a tool call), later turns from the model."""

    def __init__(self, model):
        self.model = model

    def __call__(self, convs, samplings):
        first = [i for i, c in enumerate(convs) if not any(m["role"] == "assistant" for m in c)]
        rest = [i for i in range(len(convs)) if i not in first]
        out = dict(zip(first, scripted([convs[i] for i in first], None), strict=True))
        if rest:
            gens = self.model([convs[i] for i in rest], [samplings[i] for i in rest])
            out.update(zip(rest, gens, strict=True))
        return [out[i] for i in range(len(convs))]


def build_queries(root: Path, copies: int, big: bool) -> list:
    queries = []
    for c in range(copies):
        for name in ("vstar", "tallyqa", "infovqa", "mvbench"):
            folder = getattr(fx, name)(root / f"{name}{c}")
            if big and name != "mvbench":  # realistic inputs: ~1-4 Mpx originals
                for p in folder.rglob("*.jp*g"):
                    fx.image(p, (120, 60, 30), (1600, 1200))
            for q in load_source(name, folder, "official"):
                queries.append(dataclasses.replace(q, qid=f"{q.qid}-c{c}"))
    return queries


def measure(label, queries, settings, generate, out: Path) -> dict:
    from pixelctl.executor import image_cache

    image_cache().clear()
    timed = Timed(generate)
    t = time.perf_counter()
    run_eval(queries, out, settings, generate=timed)
    wall = time.perf_counter() - t
    n = len(queries)
    return {"label": label, "n": n, "wall": wall / n, "model": timed.seconds / n,
            "overhead": (wall - timed.seconds) / n}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 copy of the fixtures (10 samples)")
    ap.add_argument("--small", action="store_true", help="tiny-recipe bounds and small images")
    args = ap.parse_args()
    copies = 1 if args.quick else 4
    if args.small:
        bounds = PixelBounds(4 * PX, 64 * PX, 4 * PX, 64 * PX, 4 * PX, 16 * PX)
        clamp = (None, None)
    else:
        bounds = ExecutorSettings.preset("eval").bounds
        clamp = (512 * PX, 5120 * PX)
    base = RunSettings(executor=ExecutorSettings(bounds=bounds), max_new_tokens=16, chunk_size=8,
                       processor_min_pixels=clamp[0], processor_max_pixels=clamp[1])  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="pixelctl-evalbench-"))
    try:
        queries = build_queries(tmp / "data", copies, big=not args.small)
        from pixelctl.backends.hf import HFGenerator
        from pixelctl.models.tiny import build_tiny_model

        model = build_tiny_model(tmp / "tiny", seed=0)
        hf = HFGenerator(str(model), batch_size=8)
        # warm-up (grading helper start, lazy imports), not measured
        run_eval(queries[:4], tmp / "warm", base, generate=ToolThenModel(hf))
        rows = [
            measure("scripted model (pure overhead)", queries, base, scripted, tmp / "a"),
            measure("tiny model, hf", queries, base, hf, tmp / "b"),
            measure("tool call, then tiny model", queries, base, ToolThenModel(hf), tmp / "c"),
            measure("tool call, then tiny model, in-proc grading", queries,
                    dataclasses.replace(base, grading_timeout=None), ToolThenModel(hf), tmp / "d"),
        ]  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ref = rows[0]["overhead"]
    print(f"\neval overhead per sample ({rows[0]['n']} samples, "
          f"{'small' if args.small else '7B eval'} bounds)")  # fmt: skip
    print(f"{'run':44} {'wall s':>8} {'model s':>8} {'overhead s':>11} {'share':>6} {'vs base':>8}")
    for r in rows:
        share = r["overhead"] / r["wall"] if r["wall"] else 0.0
        print(f"{r['label']:44} {r['wall']:8.3f} {r['model']:8.3f} {r['overhead']:11.3f} "
              f"{share:6.0%} {r['overhead'] / ref:7.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
