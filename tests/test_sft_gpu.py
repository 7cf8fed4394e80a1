"""GPU launch files and commands (golden), and the `--dry-run` plan of both shipped recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pixelctl.config import RecipeError, load_recipe
from pixelctl.errors import StageError
from pixelctl.sft import gpu
from pixelctl.stages import sft as stage

ROOT = Path(__file__).resolve().parents[1]


def recipe_7b(tmp_path: Path, *overrides: str):
    data = tmp_path / "sft.jsonl"
    data.write_text("")
    return load_recipe(ROOT / "recipes" / "7b_a800.yaml", [f"sft.data=[{data}]", *overrides])


def test_zero2_files_and_command_for_one_node(tmp_path: Path):
    loaded = recipe_7b(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    argv = gpu.write_launch_files(loaded.recipe, run)
    assert gpu.render_command(argv) == (
        f"accelerate launch --config_file {run}/accelerate.yaml -m pixelctl.sft.worker {run}"
    )
    assert yaml.safe_load((run / "accelerate.yaml").read_text()) == {
        "compute_environment": "LOCAL_MACHINE",
        "deepspeed_config": {
            "deepspeed_config_file": f"{run}/deepspeed.json",
            "zero3_init_flag": False,
        },
        "distributed_type": "DEEPSPEED",
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": "bf16",
        "num_machines": 1,
        "num_processes": 8,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    ds = json.loads((run / "deepspeed.json").read_text())
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["zero_optimization"]["reduce_scatter"] is True
    assert {
        ds[k]
        for k in (
            "train_batch_size",
            "train_micro_batch_size_per_gpu",
            "gradient_accumulation_steps",
            "gradient_clipping",
        )
    } == {"auto"}
    assert ds["bf16"] == {"enabled": "auto"}


def test_two_nodes_take_rank_and_address_from_the_environment(tmp_path: Path):
    loaded = recipe_7b(tmp_path, "launch.sft.nodes=2", "sft.zero_stage=3")
    argv = gpu.launch_command(loaded.recipe, "/runs/x")
    assert gpu.render_command(argv) == (
        "accelerate launch --config_file /runs/x/accelerate.yaml --machine_rank $NODE_RANK "
        "--main_process_ip $MASTER_ADDR --main_process_port $MASTER_PORT "
        "-m pixelctl.sft.worker /runs/x"
    )
    cfg = gpu.accelerate_config(loaded.recipe, "/runs/x")
    assert (cfg["num_machines"], cfg["num_processes"]) == (2, 16)
    assert cfg["deepspeed_config"]["zero3_init_flag"] is True


def test_dry_run_plan_of_the_7b_recipe_shows_the_arithmetic_and_the_launch(tmp_path: Path):
    text = stage.plan(recipe_7b(tmp_path))
    assert "device: cuda × 8; batch 128 = 1 per device × 8 × 16 accumulation" in text
    assert "lr 1e-06 cosine, warm-up 10%, 1.0 epochs" in text
    assert "mask: last_two_assistant" in text
    assert (
        "launch (ZeRO-2, 1 node(s)): accelerate launch --config_file "
        "'<RUN_DIR>/accelerate.yaml' -m pixelctl.sft.worker '<RUN_DIR>'"
    ) in text


def test_cpu_plan_has_no_launcher_and_bad_inputs_are_recipe_errors(tmp_path: Path):
    data = tmp_path / "sft.jsonl"
    data.write_text("")
    loaded = load_recipe(ROOT / "recipes" / "tiny_cpu.yaml", [f"sft.data=[{data}]"])
    text = stage.plan(loaded)
    assert "device: cpu × 1; batch 8 = 4 per device × 1 × 2 accumulation" in text
    assert "accelerate" not in text
    with pytest.raises(RecipeError, match="not a multiple"):
        stage.plan(
            load_recipe(
                ROOT / "recipes" / "tiny_cpu.yaml",
                [f"sft.data=[{data}]", "sft.global_batch_size=6"],
            )
        )
    missing = load_recipe(ROOT / "recipes" / "tiny_cpu.yaml", [f"sft.data=[{tmp_path / 'none'}]"])
    text = stage.plan(missing)  # a dry run before synth has run: the plan, with a warning
    assert f"data: {tmp_path / 'none'}  (MISSING)" in text
    assert "run `pixelctl synth` first" in text
    with pytest.raises(StageError, match="run `pixelctl synth` first"):
        stage.preflight(missing)  # before a run directory is made
