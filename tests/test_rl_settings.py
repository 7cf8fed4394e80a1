"""Every RL key is read by the chosen engine, or `validate` says so with the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelctl.cli.derived import derive, ignored_settings
from pixelctl.config import load_recipe
from pixelctl.config.schema import Recipe

ROOT = Path(__file__).resolve().parents[1]


def local(**rl) -> Recipe:
    return Recipe.model_validate({"rl": {"engine": "local", **rl}})


@pytest.mark.parametrize("name", ["tiny_cpu", "demo_cpu", "7b_a800", "7b_1x8", "smoke_1gpu"])
def test_shipped_recipes_set_nothing_their_engine_ignores(name):
    assert ignored_settings(load_recipe(ROOT / f"recipes/{name}.yaml").recipe) == []


def test_local_engine_refuses_loss_terms_it_does_not_have():
    problems = ignored_settings(local(optim={"kl_coef": 0.01, "entropy_coef": 0.001}))
    assert problems == [
        "rl.optim.kl_coef=0.01: the local engine's loss has no KL term (no reference model); "
        "set rl.optim.kl_coef=0, or use rl.engine=openrlhf",
        "rl.optim.entropy_coef=0.001: the local engine's loss has no entropy term (no "
        "reference model); set rl.optim.entropy_coef=0, or use rl.engine=openrlhf",
    ]
    assert ignored_settings(local(optim={"kl_coef": 0.0})) == []


def test_written_keys_the_local_engine_cannot_honour():
    problems = ignored_settings(
        local(
            rollout={"max_prompt_tokens": 512},
            optim={"zero_stage": 3, "gradient_checkpointing": False},
        )
    )
    assert [p.split(":")[0] for p in problems] == [
        "rl.rollout.max_prompt_tokens=512",
        "rl.optim.zero_stage=3",
    ]
    assert "remove rl.rollout.max_prompt_tokens from the recipe" in problems[0]
    # defaults are not the user's words: the schema's zero_stage 3 is not reported
    assert ignored_settings(local()) == []


def test_the_openrlhf_engine_reads_them_all():
    recipe = Recipe.model_validate(
        {
            "rl": {
                "engine": "openrlhf",
                "optim": {"kl_coef": 0.01},
                "rollout": {"max_prompt_tokens": 9},
            }
        }
    )
    assert ignored_settings(recipe) == []


def test_validate_reports_them_as_problems():
    _, problems = derive(local(optim={"entropy_coef": 0.1}))
    assert any(p.startswith("rl.optim.entropy_coef=0.1") for p in problems)


def test_removed_key_is_refused_with_its_name():
    with pytest.raises(ValueError, match="eval_every_rounds"):
        Recipe.model_validate({"rl": {"eval_every_rounds": 4}})


def test_pixelctl_rl_refuses_a_setting_its_engine_would_drop(tmp_path, capsys):
    # it once ran with rl.optim.kl_coef=0.1 on the local engine and silently trained without KL
    from pixelctl.cli.launch import run_stage

    argv = [f"launch.runs_root={tmp_path}", "rl.optim.kl_coef=0.1"]
    code = run_stage(
        "rl", str(ROOT / "recipes/tiny_cpu.yaml"), argv, dry_run=False, resume=None, tag=None
    )
    err = capsys.readouterr().err
    assert code == 2 and "recipes/tiny_cpu.yaml: 1 problem" in err
    assert "rl.optim.kl_coef=0.1: the local engine's loss has no KL term" in err
    assert not (tmp_path / "rl").exists()  # refused before any run directory
