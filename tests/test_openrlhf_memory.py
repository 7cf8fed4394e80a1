"""The host-memory estimate `validate --stage rl` prints, against the processor's real tensors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelctl.config import load_recipe, memory

ROOT = Path(__file__).resolve().parent.parent


def test_bytes_per_visual_token_is_what_the_processor_makes(tiny_model_dir):
    """float32 pixel_values: 4 patch rows of 1,176 values per merged token."""
    from PIL import Image
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    out = proc.image_processor(images=[Image.new("RGB", (280, 224))], return_tensors="pt")
    tokens = int(out["image_grid_thw"].prod()) // 4
    assert tokens == (280 // 28) * (224 // 28)
    pv = out["pixel_values"]
    assert pv.element_size() * pv.nelement() == tokens * memory.BYTES_PER_VISUAL_TOKEN


def test_paper_recipe_estimate():
    recipe = load_recipe(ROOT / "recipes/7b_a800.yaml").recipe
    m = memory.estimate(recipe)
    assert m.sample_floor == 2000 * 18816  # one image at the 1,568,000-pixel train cap
    assert m.sample_floor / 1e6 == pytest.approx(37.6, abs=0.05)  # the measurement
    assert m.samples_per_round == 4096
    assert m.round_floor / 1e9 == pytest.approx(154.1, abs=0.1)
    # the buffer is capped by rl.replay.max_memory_gb = 128 (3,401 samples at the floor)
    assert m.buffer_samples == int(128e9 // m.sample_floor) == 3401
    assert m.buffer_bound == 128e9
    assert m.warning() is None  # 282 GB under launch.rl.host_memory_gb = 1024
    tight = load_recipe(ROOT / "recipes/7b_a800.yaml", ["launch.rl.host_memory_gb=256"]).recipe
    assert "at least 282 GB" in memory.estimate(tight).warning()


def test_validate_prints_it(tmp_path):
    from pixelctl.cli.derived import derive

    recipe = load_recipe(ROOT / "recipes/7b_a800.yaml", ["launch.rl.host_memory_gb=100"]).recipe
    rows = {d.name: d for d in derive(recipe)[0] if d.stage == "rl"}
    assert rows["host memory per round"].value == "154–1,125 GB"
    assert rows["host memory, SSR buffer"].value == "128–128 GB"
    assert "launch.rl.host_memory_gb = 100" in rows["WARNING"].how
