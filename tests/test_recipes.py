"""Every recipe in recipes/ validates, has no arithmetic problems and says how to run itself."""

from pathlib import Path

import pytest

from pixelctl.cli.derived import derive
from pixelctl.config import load_recipe

RECIPES = sorted((Path(__file__).resolve().parent.parent / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    assert {p.stem for p in RECIPES} >= {"7b_a800", "tiny_cpu"}


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_validates_with_consistent_arithmetic(path):
    loaded = load_recipe(path)
    _, problems = derive(loaded.recipe)
    assert problems == []
    first = path.read_text().splitlines()[:6]
    assert any("pixelctl validate" in line for line in first), "start with how to validate"


def test_paper_recipe_states_the_paper():
    r = load_recipe(Path(__file__).resolve().parent.parent / "recipes/7b_a800.yaml").recipe
    assert r.model.name_or_path == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert (r.sft.lr, r.sft.lr_scheduler, r.sft.warmup_ratio, r.model.freeze_vision) == (
        1e-6,
        "cosine",
        0.1,
        True,
    )
    assert (r.rl.reward.alpha, r.rl.reward.beta, r.rl.reward.H, r.rl.reward.N) == (
        0.5,
        0.05,
        0.3,
        1,
    )
    assert (r.rl.rollout.n_samples, r.rl.optim.lr, r.rl.optim.warmup_ratio) == (8, 1e-6, 0.03)
    assert (r.rl.optim.kl_coef, r.rl.optim.clip_low, r.rl.optim.clip_high) == (0.0, 0.2, 0.35)
    assert r.executor.max_operations == 4
    assert (r.launch.rl.nodes, r.launch.rl.gpus_per_node) == (4, 8)
    px = 28 * 28
    b = r.executor.bounds
    assert (b.train.image_min_pixels, b.train.image_max_pixels) == (4 * px, 2000 * px)
    assert (b.train.crop_max_pixels, b.train.frame_max_pixels) == (1000 * px, 400 * px)
    assert (b.eval.image_min_pixels, b.eval.image_max_pixels) == (256 * px, 8000 * px)
    assert (b.eval.crop_min_pixels, b.eval.crop_max_pixels, b.eval.frame_max_pixels) == (
        256 * px,
        5120 * px,
        512 * px,
    )
    assert (b.eval.processor_min_pixels, b.eval.processor_max_pixels) == (401_408, 4_014_080)


def test_paper_recipe_bounds_are_the_executor_presets():
    from pixelctl.executor import ExecutorSettings

    r = load_recipe(Path(__file__).resolve().parent.parent / "recipes/7b_a800.yaml").recipe
    for preset in ("train", "eval"):
        assert r.executor.settings(preset) == ExecutorSettings.preset(preset)
