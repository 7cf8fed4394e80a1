"""`pixelctl eval` as a stage: checkpoint resolution, plan, and the tiny model end to end (hf)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixelctl.cli.launch import run_stage
from pixelctl.config import load_recipe
from pixelctl.models.resolve import resolve_model
from pixelctl.stages import eval as eval_stage
from tests.helpers import eval_fixtures as fx

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny_cpu.yaml"


def _model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_checkpoint_resolution_order(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _model(run / "checkpoints" / "checkpoint-9")
    newest = _model(run / "checkpoints" / "checkpoint-12")
    (run / "checkpoints" / "checkpoint-30").mkdir()  # no config.json: an unfinished save
    assert resolve_model(str(run)) == str(newest)
    sft_model = _model(run / "model")
    assert resolve_model(str(run)) == str(sft_model)
    final = _model(run / "checkpoints" / "final")
    assert resolve_model(str(run)) == str(final)
    assert resolve_model(str(final)) == str(final)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no model in it"):
        resolve_model(str(tmp_path / "empty"))


def test_plan_lists_sources_and_bounds(tmp_path: Path) -> None:
    loaded = load_recipe(
        RECIPE,
        [f"eval.checkpoint={tmp_path / 'nowhere'}",
         f"eval.benchmarks=[{{name: vstar, path: {tmp_path}, layout: official, limit: 5}}]"],
    )  # fmt: skip
    text = eval_stage.plan(loaded)
    assert "(not found yet)" in text and "backend hf, workers 1, prompt vcot" in text
    assert f"vstar: {tmp_path} (official layout, first 5)" in text
    assert "image 3136..50176" in text


def _procedural(root: Path) -> Path:
    fx.image(root / "procedural" / "eval" / "scene-00000.png", (90, 90, 90), (336, 336))
    row = {"qid": "procedural-eval-00000", "question": "What shape? Options: circle, square.",
           "image": ["procedural/eval/scene-00000.png"], "answer": "circle", "is_video": False,
           "options": ["circle", "square"], "task": "shape"}  # fmt: skip
    return fx.write_jsonl(root / "eval.jsonl", [row])


@pytest.mark.slow
def test_tiny_model_on_all_four_benchmarks_and_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    sources = [f"{{name: {n}, path: {getattr(fx, n)(data / n)}, layout: official}}"
               for n in ("vstar", "tallyqa", "infovqa", "mvbench")]  # fmt: skip
    sources.append(f"{{name: procedural, path: {_procedural(data / 'proc')}}}")
    overrides = [
        f"eval.checkpoint={tiny_model_dir}",
        f"eval.benchmarks=[{', '.join(sources)}]",
        "eval.max_new_tokens=8",
        f"launch.runs_root={tmp_path / 'runs'}",
    ]
    assert run_stage("eval", str(RECIPE), overrides, dry_run=False, resume=None, tag=None) == 0
    [run] = [p for p in (tmp_path / "runs" / "eval").iterdir() if not p.is_symlink()]
    records = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2 + 2 + 2 + 4 + 1
    assert {r["benchmark"] for r in records} == {
        "vstar",
        "tallyqa",
        "infovqa",
        "mvbench",
        "procedural",
    }
    assert all(r["error"] is None and r["completion_tokens"] > 0 for r in records)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["infovqa"]["metric"] == "anls" and metrics["mvbench"]["n"] == 4
    assert json.loads((run / "meta.json").read_text())["status"] == "ok"
    before = (run / "samples.jsonl").read_bytes()
    assert run_stage("eval", None, [], dry_run=False, resume=run, tag=None) == 0
    assert (run / "samples.jsonl").read_bytes() == before  # every qid done: nothing re-run


def test_eval_bounds_reach_the_loop_and_the_backend_by_value() -> None:
    import pickle

    loaded = load_recipe(RECIPE.with_name("7b_a800.yaml"), ["eval.backend=vllm"])
    run, spec = eval_stage.settings_for(loaded, "/models/x", "cuda")
    back = pickle.loads(pickle.dumps(run))  # what a Ray actor receives
    px = 28 * 28
    assert (back.executor.bounds.image_min_pixels, back.executor.bounds.image_max_pixels) == (
        256 * px,
        8000 * px,
    )
    assert back.executor.bounds.crop_max_pixels == 5120 * px
    assert (back.processor_min_pixels, back.processor_max_pixels) == (401_408, 4_014_080)
    assert (spec.processor_min_pixels, spec.processor_max_pixels) == (401_408, 4_014_080)
    assert back.mode == "vcot" and back.max_new_tokens == 2048 and back.chunk_size == 64
    assert spec.kind == "vllm" and spec.dtype == "bfloat16" and spec.max_images == 16
