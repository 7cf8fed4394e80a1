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


def test_the_local_engine_has_both_optional_loss_terms():
    # the KL to the starting model and the entropy bonus (test_local_engine.py runs them)
    assert ignored_settings(local(optim={"kl_coef": 0.01, "entropy_coef": 0.001})) == []


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
    _, problems = derive(local(rollout={"micro_batch_size": 2}))
    assert any(p.startswith("rl.rollout.micro_batch_size=2") for p in problems)


def test_removed_key_is_refused_with_its_name():
    with pytest.raises(ValueError, match="eval_every_rounds"):
        Recipe.model_validate({"rl": {"eval_every_rounds": 4}})


def test_pixelctl_rl_refuses_a_setting_its_engine_would_drop(tmp_path, capsys):
    # it once ran with rl.optim.kl_coef=0.1 on the local engine and silently trained without KL
    # (the engine has the term now); a prompt-length limit it never checks is the same case
    from pixelctl.cli.launch import run_stage

    argv = [f"launch.runs_root={tmp_path}", "rl.rollout.max_prompt_tokens=512"]
    code = run_stage(
        "rl", str(ROOT / "recipes/tiny_cpu.yaml"), argv, dry_run=False, resume=None, tag=None
    )
    err = capsys.readouterr().err
    assert code == 2 and "recipes/tiny_cpu.yaml: 1 problem" in err
    assert "rl.rollout.max_prompt_tokens=512: the local engine checks no prompt length" in err
    assert not (tmp_path / "rl").exists()  # refused before any run directory
