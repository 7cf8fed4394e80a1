"""The recipe → OpenRLHF flag table, checked by the pinned OpenRLHF's own argument parser."""

import argparse
import ast
import json
import os
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from pixelctl.config import load_recipe
from pixelctl.engines.openrlhf.data import max_images_per_prompt
from pixelctl.engines.openrlhf.flags import FLAG_TABLE, render_flags
from pixelctl.engines.openrlhf.job import (
    EXECUTOR_ENV,
    REPLAY_ENV,
    ROLLOUT_ENV,
    env_vars,
    render_command,
    run_paths,
    submit_argv,
)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden"
RECIPES = [
    p
    for p in sorted((ROOT / "recipes").glob("*.yaml"))
    if load_recipe(p).recipe.rl.engine == "openrlhf"
]


def openrlhf_parser() -> argparse.ArgumentParser:
    """Build train_ppo_ray's real parser: run its `__main__` block up to parse_args.

    The module itself imports ray actors and deepspeed, so it is read as source; the parser
    statements are executed verbatim, f-string-generated flags included.
    """
    spec = find_spec("openrlhf")
    if spec is None:
        pytest.skip("openrlhf is not installed (make install adds it with --no-deps)")
    source = (Path(spec.origin).parent / "cli" / "train_ppo_ray.py").read_text()
    tree = ast.parse(source)
    main = next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))
    body = [n for n in tree.body if _stdlib_import(n)]  # argparse, os, datetime: defaults use them
    for stmt in main.body:
        if "parse_args" in ast.unparse(stmt):
            break
        body.append(stmt)
    ns: dict = {}
    exec(compile(ast.Module(body=body, type_ignores=[]), "train_ppo_ray", "exec"), ns)
    return ns["parser"]


def _stdlib_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return all(a.name.split(".")[0] in sys.stdlib_module_names for a in node.names)
    return (
        isinstance(node, ast.ImportFrom)
        and (node.module or "").split(".")[0] in sys.stdlib_module_names
    )


@pytest.fixture(scope="module")
def parser():
    return openrlhf_parser()


def test_every_flag_in_the_table_exists_in_openrlhf(parser):
    known = {s for a in parser._actions for s in a.option_strings}
    missing = [row.flag for row in FLAG_TABLE if row.flag not in known]
    assert missing == []
    assert len(known) > 150  # the real parser, not a stub


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_rendered_flags_parse_to_the_recipe_values(parser, path, tmp_path):
    recipe = load_recipe(path).recipe
    paths = run_paths(recipe, tmp_path, pixelctl_dir="/opt/pixelctl")
    args = vars(parser.parse_args(render_flags(recipe, paths)))
    expect = {
        "rollout.n_samples_per_prompt": recipe.rl.rollout.n_samples,
        "rollout.batch_size": recipe.rl.rollout.prompts_per_round,
        "train.batch_size": recipe.rl.optim.batch_size,
        "actor.adam.lr": recipe.rl.optim.lr,
        "actor.adam.betas": list(recipe.rl.optim.adam_betas),
        "actor.eps_clip_low_high": [recipe.rl.optim.clip_low, recipe.rl.optim.clip_high],
        "algo.kl.init_coef": recipe.rl.optim.kl_coef,
        "algo.advantage.estimator": "group_norm" if recipe.rl.optim.std_norm else "dr_grpo",
        "actor.freeze_visual_encoder": recipe.model.freeze_vision,
        "data.max_images_per_prompt": max_images_per_prompt(recipe.executor.max_images),
        "data.apply_chat_template": False,  # the converted prompt is already chat-formatted
        "train.agent_func_path": str(tmp_path / "job" / "agent_plugin.py"),
        "data.prompt_dataset": str(tmp_path / "data" / "prompts.jsonl"),
        "actor.num_nodes": recipe.launch.rl.nodes,
        "vllm.num_engines": recipe.launch.rl.vllm_engines,
        "actor.loss_agg_mode": "token-mean",
    }
    assert {k: args[k] for k in expect} == expect


def test_paper_run_values(parser, tmp_path):
    recipe = load_recipe(ROOT / "recipes/7b_a800.yaml").recipe
    args = vars(
        parser.parse_args(render_flags(recipe, run_paths(recipe, tmp_path, pixelctl_dir="/p")))
    )
    assert args["actor.eps_clip_low_high"] == [0.2, 0.35]
    # reward − group mean, no std division: dr_grpo in 0.11.2 (group_norm always divides)
    assert args["algo.kl.init_coef"] == 0.0 and args["algo.advantage.estimator"] == "dr_grpo"
    assert args["data.max_images_per_prompt"] == 16 + 15
    assert args["actor.model_name_or_path"] == "runs/sft/7b_a800-latest/model"
    # 0.11.2's global_step counts rollout rounds (train_step returns global_step + 1 per round)
    assert args["ckpt.save_steps"] == 3  # rl.save_every_rounds, not 3 × 16 optimizer steps
    # the context holds the executor's budget plus the largest observation: 8 frames of 400
    assert args["data.max_len"] == 12088 + 8 * (313600 // 784 + 2) + 256
    assert args["actor.lr_scheduler"] == "cosine_with_min_lr" and args["actor.min_lr_ratio"] == 0.5
    assert args["train.colocate_all"] and args["vllm.enable_sleep"] and args["ds.zero_stage"] == 3


def test_a_kl_term_is_the_local_engines_k3_loss(parser, tmp_path):
    """kl_coef > 0 asks OpenRLHF for the KL as a k3 loss term (what pixelctl.rl.loss adds), not
    its default k1 reward penalty; at 0 neither flag is written (the golden files)."""
    recipe = load_recipe(ROOT / "recipes/7b_a800.yaml", ["rl.optim.kl_coef=0.02"]).recipe
    flags = render_flags(recipe, run_paths(recipe, tmp_path, pixelctl_dir="/p"))
    args = vars(parser.parse_args(flags))
    assert (args["algo.kl.init_coef"], args["algo.kl.use_loss"]) == (0.02, True)
    assert args["algo.kl.estimator"] == "k3"
    paper = load_recipe(ROOT / "recipes/7b_a800.yaml").recipe
    off = render_flags(paper, run_paths(paper, tmp_path, pixelctl_dir="/p"))
    assert "--algo.kl.use_loss" not in off and "--algo.kl.estimator" not in off
    assert vars(parser.parse_args(off))["algo.kl.use_loss"] is False


def test_runtime_env_carries_the_pixel_bounds_to_workers(tmp_path):
    recipe = load_recipe(ROOT / "recipes/7b_a800.yaml").recipe
    argv = submit_argv(recipe, run_paths(recipe, tmp_path, pixelctl_dir="/opt/pixelctl"))
    env = json.loads(argv[argv.index("--runtime-env-json") + 1])
    assert env["py_modules"] == ["/opt/pixelctl"]  # our code on every worker
    executor = json.loads(env["env_vars"][EXECUTOR_ENV])
    # null: OpenRLHF scores every token at --rollout.temperature (flags.after_tool_temperature)
    assert json.loads(env["env_vars"][ROLLOUT_ENV])["temperature_after_tool"] is None
    assert env["worker_process_setup_hook"] == "pixelctl.engines.openrlhf.patchcheck.worker_setup"
    assert json.loads(env["env_vars"][REPLAY_ENV]) == {
        **recipe.rl.replay.model_dump(mode="json"),
        "seed": recipe.rl.seed,
    }
    assert executor["bounds"]["eval"]["processor_max_pixels"] == 4_014_080
    assert executor["bounds"]["train"]["crop_max_pixels"] == 1000 * 28 * 28
    assert argv[argv.index("--") + 1 : argv.index("--") + 6] == [
        "env",
        "TOKENIZERS_PARALLELISM=false",
        "python",
        "-m",
        "openrlhf.cli.train_ppo_ray",
    ]


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_golden_command(path):
    recipe = load_recipe(path).recipe
    run = Path("/runs/rl") / f"{path.stem}-RUN"
    text = (
        render_command(
            submit_argv(recipe, run_paths(recipe, run, pixelctl_dir="/opt/venv/pixelctl"))
        )
        + "\n"
    )
    golden = GOLDEN / f"rl_{path.stem}.sh"
    if os.environ.get("PIXELCTL_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.is_file(), f"run with PIXELCTL_UPDATE_GOLDEN=1 to create {golden}"
    assert text == golden.read_text()


def test_resume_loads_the_run_checkpoints(parser, tmp_path):
    recipe = load_recipe(ROOT / "recipes/7b_a800.yaml").recipe
    fresh = render_flags(recipe, run_paths(recipe, tmp_path, pixelctl_dir="/p"))
    resumed = render_flags(recipe, run_paths(recipe, tmp_path, pixelctl_dir="/p", resume=True))
    assert "--ckpt.load_enable" not in fresh
    args = vars(parser.parse_args(resumed))
    assert args["ckpt.load_enable"] is True and args["ckpt.path"] == str(tmp_path / "checkpoints")
    assert args["ckpt.output_dir"] == str(tmp_path / "checkpoints" / "final")


def test_save_steps_matches_openrlhfs_round_counter():
    """Read the rule from the installed trainer: one `global_step + 1` per train_step (one
    rollout round) and `global_step % save_steps` for saving."""
    source = (Path(find_spec("openrlhf").origin).parent / "trainer" / "ppo_trainer.py").read_text()
    assert "return status, global_step + 1" in source
    assert "if global_step % self.args.ckpt.save_steps == 0:" in source
    recipe = load_recipe(ROOT / "recipes/7b_a800.yaml", ["rl.save_every_rounds=5"]).recipe
    argv = render_flags(recipe, run_paths(recipe, Path("/r"), pixelctl_dir="/p"))
    assert argv[argv.index("--ckpt.save_steps") + 1] == "5"


def test_recipes_openrlhf_cannot_run_are_refused_with_the_fix(parser):
    from pixelctl.engines.openrlhf.flags import check_recipe
    from pixelctl.errors import StageError

    fp32 = load_recipe(ROOT / "recipes/7b_a800.yaml", ["model.dtype=float32"]).recipe
    with pytest.raises(SystemExit):  # what the job would have died of
        parser.parse_args(render_flags(fp32, run_paths(fp32, Path("/r"), pixelctl_dir="/p")))
    with pytest.raises(StageError, match=r"model.dtype=float32.*bf16 or fp16"):
        check_recipe(fp32)
    hot = load_recipe(ROOT / "recipes/7b_a800.yaml", ["rl.rollout.temperature_after_tool=0.9"])
    rollout = json.loads(env_vars(hot.recipe)[ROLLOUT_ENV])  # what the plugin will read
    assert rollout["temperature_after_tool"] is None and rollout["temperature"] == 1.0
    uneven = load_recipe(ROOT / "recipes/7b_a800.yaml", ["launch.rl.gpus_per_node=6"]).recipe
    with pytest.raises(StageError, match=r"4096 samples .* do not divide over 24 actor ranks"):
        check_recipe(uneven)
    for path in RECIPES:
        check_recipe(load_recipe(path).recipe)  # the shipped recipes run


def test_the_last_partial_round_is_trimmed_to_divide_over_the_ranks():
    from pixelctl.engines.openrlhf.flags import trim_for_ranks

    recipe = load_recipe(ROOT / "recipes/7b_a800.yaml").recipe  # 32 ranks, n = 8: step 4
    assert [trim_for_ranks(n, recipe) for n in (15000, 15001, 15003, 512)] == [0, 1, 3, 0]
    for n in range(14990, 15010):
        kept = n - trim_for_ranks(n, recipe)
        assert (kept % 512) * 8 % 32 == 0  # the partial round's samples split evenly
