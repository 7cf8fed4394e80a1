"""The CPU parts of `make smoke-gpu` (the run itself needs a GPU): the recipe's dry run, its
data (one prompt refused by the visual-token budget), and the smoke plugin's scripted crop
through OpenRLHF's real MultiTurnAgentExecutor with the tiny processor."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pixelctl.config import load_recipe
from pixelctl.engines.openrlhf import smoke_plugin, submit
from pixelctl.engines.openrlhf.data import PromptBudget, convert, label_json, render_prompt
from pixelctl.engines.openrlhf.flags import max_len
from pixelctl.engines.openrlhf.job import env_vars
from tests.helpers import smoke_data
from tests.test_openrlhf_plugin import SP, FakeEngine

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_dry_run(tmp_path):
    loaded = load_recipe(ROOT / "recipes/smoke_1gpu.yaml", [f"launch.runs_root={tmp_path}"])
    text = submit.plan(loaded)
    assert "the smoke plugin: one scripted crop on turn 1" in text
    assert "each episode's last round has 1 prompts" in text
    assert "--ckpt.save_steps 1" in text and "--ds.zero_stage 3" in text
    assert "--rollout.n_samples_per_prompt 4" in text and "--rollout.batch_size 2" in text


def test_smoke_data_and_scripted_crop(tmp_path, tiny_model_dir, monkeypatch):
    from openrlhf.utils.utils import get_tokenizer

    from pixelctl.agent import Query

    recipe = load_recipe(ROOT / "recipes/smoke_1gpu.yaml").recipe
    processor = get_tokenizer(str(tiny_model_dir), None, "left")
    tok = processor.tokenizer
    budget = PromptBudget.from_recipe(
        recipe, lambda t: len(tok(t, add_special_tokens=False)["input_ids"])
    )
    report = convert([smoke_data.write(tmp_path / "data")], tmp_path / "p.jsonl", budget=budget)
    assert report.written == 5 and [r.id for r in report.rejects] == ["smoke-too-long"]

    for key, value in env_vars(recipe).items():
        monkeypatch.setenv(key, value)
    executor = smoke_plugin.AgentExecutor()
    image = str(tmp_path / "data" / "scene0.png")
    query = Query(qid="smoke-0", question="How many?", images=(image,), answer="1")
    engine = FakeEngine(processor, ["(random tokens)", r"\boxed{1}"])
    result = asyncio.run(
        executor.execute(
            render_prompt(query), label_json(query), SP(max_tokens=64),
            max_length=max_len(recipe), hf_tokenizer=processor, llm_engine=engine,
            images=[image],
        )
    )  # fmt: skip
    logs = result["extra_logs"]
    assert logs["pixelctl/n_calls"] == 1.0 and logs["pixelctl/smoke_turn2_images"] == 2.0
    assert [len(c["images"]) for c in engine.calls] == [1, 2]
    assert result["mm_train_inputs"]["image_grid_thw"].shape[0] == 2
    assert "crop_image_normalized" in tok.decode(result["observation_tokens"])
    # the fake engine reports no prompt of its own: on a GPU vLLM's must equal the HF length
    assert logs["pixelctl/smoke_prompt_match"] == 0.0
    assert json.loads(env_vars(recipe)["PIXELCTL_SCHEDULE_JSON"])["save_every_rounds"] == 1
