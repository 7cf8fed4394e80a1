"""GPU launch: an accelerate config (DeepSpeed ZeRO-`sft.zero_stage`) and the command that uses it.

`pixelctl sft` on a GPU recipe writes `accelerate.yaml` and `deepspeed.json` into the run
directory, then runs (and `--dry-run` prints)

    accelerate launch --config_file RUN/accelerate.yaml -m pixelctl.sft.worker RUN

once per node; on more than one node each node adds `--machine_rank`, `--main_process_ip`
and `--main_process_port` (from `$NODE_RANK`, `$MASTER_ADDR`, `$MASTER_PORT`). The DeepSpeed
file leaves batch sizes, accumulation, clipping and precision on "auto": transformers fills them
from the same `SFTConfig` the CPU path uses, so the two paths cannot disagree.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

ACCELERATE_FILE = "accelerate.yaml"
DEEPSPEED_FILE = "deepspeed.json"


def needs_launcher(recipe: Any, device: str) -> bool:
    """True when training must run under accelerate (several GPUs or DeepSpeed)."""
    return device == "cuda" and (recipe.launch.sft.gpus > 1 or recipe.sft.zero_stage > 0)


def deepspeed_config(recipe: Any) -> dict[str, Any]:
    """ZeRO config with every size tied to the trainer ("auto")."""
    stage = recipe.sft.zero_stage
    zero: dict[str, Any] = {
        "stage": stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if stage >= 2:
        zero.update(allgather_partitions=True, allgather_bucket_size=5e8, reduce_scatter=True)
    if stage == 3:
        zero.update(stage3_gather_16bit_weights_on_model_save=True)
    return {
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_optimization": zero,
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "steps_per_print": 1_000_000_000,  # the trainer logs; DeepSpeed stays quiet
        "wall_clock_breakdown": False,
    }


def accelerate_config(recipe: Any, run_path: Path | str) -> dict[str, Any]:
    layout = recipe.launch.sft
    mixed = {"bfloat16": "bf16", "float16": "fp16"}.get(recipe.model.dtype, "no")
    cfg: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": mixed,
        "num_machines": layout.nodes,
        "num_processes": layout.gpus,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    if recipe.sft.zero_stage > 0:
        cfg["distributed_type"] = "DEEPSPEED"
        cfg["deepspeed_config"] = {
            "deepspeed_config_file": str(Path(run_path) / DEEPSPEED_FILE),
            "zero3_init_flag": recipe.sft.zero_stage == 3,
        }
    else:
        cfg["distributed_type"] = "MULTI_GPU"
    return cfg


def launch_command(recipe: Any, run_path: Path | str) -> list[str]:
    """The argv each node runs."""
    cmd = ["accelerate", "launch", "--config_file", str(Path(run_path) / ACCELERATE_FILE)]
    if recipe.launch.sft.nodes > 1:
        cmd += [
            "--machine_rank",
            "$NODE_RANK",
            "--main_process_ip",
            "$MASTER_ADDR",
            "--main_process_port",
            "$MASTER_PORT",
        ]
    return [*cmd, "-m", "pixelctl.sft.worker", str(run_path)]


def render_command(argv: list[str]) -> str:
    """Shell text; `$VARS` stay unquoted so each node's shell fills them."""
    return " ".join(a if a.startswith("$") else shlex.quote(a) for a in argv)


def write_launch_files(recipe: Any, run_path: Path) -> list[str]:
    """Write the accelerate and DeepSpeed files into the run directory; return the argv."""
    (run_path / ACCELERATE_FILE).write_text(
        yaml.safe_dump(accelerate_config(recipe, run_path), sort_keys=True)
    )
    if recipe.sft.zero_stage > 0:
        (run_path / DEEPSPEED_FILE).write_text(
            json.dumps(deepspeed_config(recipe), indent=2) + "\n"
        )
    return launch_command(recipe, run_path)
