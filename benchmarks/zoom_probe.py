"""Does the demo's answer need the zoom? A probe with the tiny model's own eye.

Not a speed benchmark: a measurement for docs/demo.md. For each procedural task it trains the
demo model's vision tower (recipes/demo_cpu.yaml: `builtin:tiny-qwen2.5-vl-demo`, from its
random init, the same every time) plus a linear read-out of its output tokens, once on the whole
view exactly as the executor fits it to the recipe's image bounds, once on the crop of the panel
exactly as the executor returns it for the synthesized (correct) box (with the recipe's padding,
panel grid, detail size and clear margin), and reports held-out accuracy for both next to
chance. The ratio crop/whole is the benchmark's "baseline in the same run" comparison.

    .venv/bin/python benchmarks/zoom_probe.py            # 400 scenes, 300 steps (minutes)
    .venv/bin/python benchmarks/zoom_probe.py --quick    # 80 scenes, 30 steps (a smoke run)
    .venv/bin/python benchmarks/zoom_probe.py --tasks shape --set synth.procedural.detail_px=8
    .venv/bin/python benchmarks/zoom_probe.py --ask      # no training: ask the model itself

`--ask` trains nothing: the recipe's model, as built (the demo model is pretrained to name what a
clear panel shows, `pixelctl.models.perception`), is asked that question about each scene's whole
view and about its crop, greedy; a reply counts when it is exactly the scene's caption.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "demo_cpu.yaml"


def views(out: Path, rows: list[dict], settings, canvas: int) -> list[tuple]:
    """(whole view, crop, answer, task, caption) per scene, through the real executor."""
    from pixelctl.executor import Session
    from pixelctl.synth.operations import outward

    items = []
    for r in rows:
        sess = Session(images=[str(out / "procedural" / r["image"])], settings=settings)
        x, y, w, h = r["boxes"][0]["bbox"]
        box = outward((x / canvas, y / canvas, (x + w) / canvas, (y + h) / canvas))
        args = json.dumps({"bbox_2d": box, "target_image": 1})
        obs = sess.execute_text(
            f'<tool_call>\n{{"name": "crop_image_normalized", "arguments": {args}}}\n</tool_call>'
        )
        assert obs.ok, obs.error
        caption = r["boxes"][0]["text"]
        items.append((sess.input_image(1), obs.images[0], r["answer"], r["task"], caption))
    return items


def probe(model_dir: str, images: list, labels: list[int], n_classes: int, steps: int) -> float:
    """Train vision tower + linear head on the first 75%, return accuracy on the rest."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    proc = AutoProcessor.from_pretrained(model_dir)
    enc = proc.image_processor(images=images, do_resize=False, return_tensors="pt")
    torch.manual_seed(0)
    vis = AutoModelForImageTextToText.from_pretrained(model_dir).model.visual
    grid = enc["image_grid_thw"]
    pv = enc["pixel_values"].view(len(images), -1, enc["pixel_values"].shape[-1])
    n_tok = int(grid[0].prod()) // 4
    width = vis.config.out_hidden_size
    head = torch.nn.Linear(n_tok * width, n_classes)
    opt = torch.optim.AdamW([*vis.parameters(), *head.parameters()], lr=1e-3)
    y = torch.tensor(labels)
    n_train = int(len(images) * 0.75)

    def logits(idx):
        out = vis(pv[idx].reshape(-1, pv.shape[-1]), grid_thw=grid[idx])
        out = getattr(out, "pooler_output", out)
        return head(out.reshape(len(idx), -1))

    for _ in range(steps):
        idx = torch.randint(0, n_train, (16,))
        loss = torch.nn.functional.cross_entropy(logits(idx), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        test = torch.arange(n_train, len(images))
        return float((logits(test).argmax(-1) == y[test]).float().mean())


def ask(model_dir: str, items: list[tuple]) -> tuple[float, float]:
    """Share of exact captions (`perception.reply`) on the whole views and on the crops."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from pixelctl.models.perception import caption, reply

    proc = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    whole = sum(caption(model, proc, it[0]) == reply(it[4]) for it in items) / len(items)
    crop = sum(caption(model, proc, it[1]) == reply(it[4]) for it in items) / len(items)
    return whole, crop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scenes", type=int, default=400)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--tasks", nargs="+", default=None, help="default: every drawable task")
    parser.add_argument("--ask", action="store_true", help="ask the model, train nothing")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="recipe overrides, e.g. synth.procedural.detail_px=8",
    )
    args = parser.parse_args()
    n, steps = (80, 30) if args.quick else (args.scenes, args.steps)

    import torch

    from pixelctl.config import load_recipe
    from pixelctl.models.resolve import resolve_model
    from pixelctl.synth.procedural import KINDS, generate_split

    unknown = set(args.tasks or ()) - set(KINDS)
    if unknown:
        parser.error(f"unknown --tasks {sorted(unknown)}; the drawable tasks are {list(KINDS)}")
    torch.set_num_threads(2)
    recipe = load_recipe(RECIPE, args.set).recipe
    settings = recipe.executor.settings("train")
    canvas = recipe.synth.procedural.canvas_min
    assert canvas == recipe.synth.procedural.canvas_max, "the probe assumes one canvas size"
    model_dir = resolve_model(recipe.model.name_or_path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        seed_file = generate_split(
            out,
            "probe",
            n,
            seed=12345,
            canvas_min=canvas,
            canvas_max=canvas,
            bounds=settings.bounds,
            grid=recipe.synth.procedural.grid,
            detail_px=recipe.synth.procedural.detail_px,
            clear_margin=recipe.synth.procedural.clear_margin,
            kinds=KINDS,  # every drawable task, the mix's and the ones left out of it
        )
        rows = [json.loads(line) for line in seed_file.read_text().splitlines()]
        items = views(out, rows, settings, canvas)
    print(
        f"{n} scenes (seed 12345, not the demo's), {steps} steps; whole {items[0][0].size}, "
        f"crop {items[0][1].size}"
    )
    if args.ask:
        print("| task | scenes | chance | model asked, whole view | crop | crop / whole |")
        print("|---|---|---|---|---|---|")
        for task in args.tasks or recipe.synth.procedural.tasks:
            mine = [it for it in items if it[3] == task]
            chance = 1 / len({it[2] for it in mine})
            whole, crop = ask(model_dir, mine)
            ratio = crop / whole if whole else float("inf")
            print(
                f"| {task} | {len(mine)} | {chance:.2f} | {whole:.2f} | {crop:.2f} | {ratio:.2f} |"
            )
        return
    print("| task | scenes | chance | whole view | crop | crop / whole |")
    print("|---|---|---|---|---|---|")
    for task in args.tasks or KINDS:
        mine = [it for it in items if it[3] == task]
        if len(mine) < 8:
            continue
        classes = sorted({it[2] for it in mine})
        labels = [classes.index(it[2]) for it in mine]
        t = time.perf_counter()
        whole = probe(model_dir, [it[0] for it in mine], labels, len(classes), steps)
        crop = probe(model_dir, [it[1] for it in mine], labels, len(classes), steps)
        ratio = crop / whole if whole else float("inf")
        print(
            f"| {task} | {len(mine)} | {1 / len(classes):.2f} | {whole:.2f} | {crop:.2f} | "
            f"{ratio:.2f} |  ({time.perf_counter() - t:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
