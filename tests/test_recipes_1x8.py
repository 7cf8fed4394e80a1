"""recipes/7b_1x8.yaml: the authors' single-node layout (train_vlm_single.sh), checked through
OpenRLHF 0.11.2's own argument parser and pixelctl's derived numbers."""

from __future__ import annotations

from pathlib import Path

from pixelctl.cli.derived import derive
from pixelctl.config import load_recipe
from pixelctl.engines.openrlhf.flags import render_flags
from pixelctl.engines.openrlhf.job import run_paths
from tests.test_openrlhf_flags import openrlhf_parser

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "7b_1x8.yaml"


def test_one_node_layout_parses_as_the_authors_script(tmp_path: Path) -> None:
    recipe = load_recipe(RECIPE).recipe
    args = vars(openrlhf_parser().parse_args(render_flags(recipe, run_paths(recipe, tmp_path))))
    # 4 actor GPUs (ZeRO-3, Adam offload) + 4 vLLM engines on the other 4, not colocated
    assert (args["actor.num_nodes"], args["actor.num_gpus_per_node"]) == (1, 4)
    assert (args["vllm.num_engines"], args["vllm.tensor_parallel_size"]) == (4, 1)
    assert args["ds.adam_offload"] and args["ds.zero_stage"] == 3
    assert not args["train.colocate_all"] and not args["vllm.enable_sleep"]
    assert args["vllm.gpu_memory_utilization"] == 0.85
    assert (args["rollout.batch_size"], args["rollout.n_samples_per_prompt"]) == (512, 8)
    assert (args["train.batch_size"], args["train.micro_batch_size"]) == (256, 2)


def test_one_node_derived_numbers() -> None:
    derived, problems = derive(load_recipe(RECIPE).recipe)
    got = {d.name: d.value for d in derived if d.stage == "rl"}
    assert problems == []
    assert got["trajectories per round"] == 4096
    assert got["gradient accumulation"] == 32  # 256 / (2 × 4 actor GPUs)
    assert (got["GPUs needed"], got["GPUs declared"]) == (8, 8)
    assert got["rounds"] == 90


def test_colocated_layouts_still_give_the_actor_every_gpu(tmp_path: Path) -> None:
    recipe = load_recipe(RECIPE, ["launch.rl.colocate=true", "launch.rl.vllm_engines=8"]).recipe
    args = vars(openrlhf_parser().parse_args(render_flags(recipe, run_paths(recipe, tmp_path))))
    assert args["actor.num_gpus_per_node"] == 8 and args["train.colocate_all"]
