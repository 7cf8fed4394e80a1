"""`pixelctl reproduce` / `make reproduce`: the paper's pipeline, stage by stage, on a cluster.

data (the released datasets, or `pixelctl synth`) → sft → rl → eval, each stage's run directory
feeding the next through the recipe's `-latest` paths. Without GPUs it prints the plan — the
commands, the data it needs and a GPU-hours estimate — and stops with a clear message.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pixelctl.cli.derived import derive
from pixelctl.config import LoadedRecipe

# docs/method.md §9: RL on 4×8 A800 for ~20 hours, for the paper's 90 rounds (ceil(15000/512) × 3).
PAPER_RL_GPU_HOURS, PAPER_RL_ROUNDS = 4 * 8 * 20, 90

DATASETS = {
    "sft": "TIGER-Lab/PixelReasoner-SFT-Data",
    "rl": "TIGER-Lab/PixelReasoner-RL-Data",
}


def gpu_hours(loaded: LoadedRecipe) -> float:
    """RL GPU-hours scaled from the paper's run by rounds × trajectories × GPUs used."""
    numbers, _ = derive(loaded.recipe)
    got = {(d.stage, d.name): d.value for d in numbers}
    r = loaded.recipe
    scale = (got[("rl", "rounds")] / PAPER_RL_ROUNDS) * (
        r.rl.rollout.prompts_per_round * r.rl.rollout.n_samples / (512 * 8)
    )
    return round(PAPER_RL_GPU_HOURS * scale, 1)


def plan(loaded: LoadedRecipe) -> str:
    path = loaded.path or Path("RECIPE.yaml")
    lines = [
        f"pixelctl reproduce {path}",
        "",
        "data needed (download where a model hub is reachable, then copy here):",
        f"  hf download --repo-type dataset {DATASETS['sft']} --local-dir data/sft",
        f"  hf download --repo-type dataset {DATASETS['rl']} --local-dir data/rl",
        "  benchmarks under data/eval/{vstar,tallyqa,infovqa,mvbench} (official layouts, docs/eval.md)",
        f"  or build warm-start data yourself: pixelctl synth {path}",
        "",
        "stages, in order (each on the cluster):",
        f"  pixelctl sft {path}",
        f"  pixelctl rl {path}        # ray job submit to launch.rl.ray_address",
        f"  pixelctl eval {path}",
        "",
        f"estimated RL cost: {gpu_hours(loaded)} GPU-hours "
        f"(the paper: {PAPER_RL_GPU_HOURS} on 4×8 A800, docs/method.md §9); SFT and eval time are not "
        "reported by the paper",
    ]
    return "\n".join(lines)


def fetch_datasets(dest: Path, *, download=None) -> dict[str, Path]:
    """Download the released SFT and RL datasets into `dest/sft` and `dest/rl` through
    `pixelctl.hub` (resumable, zips unpacked, never fetched twice). Needs a reachable hub."""
    from pixelctl.hub import HubRepo, fetch

    repos = [HubRepo(repo, "dataset", dest / kind) for kind, repo in DATASETS.items()]
    try:
        fetch(repos, download=download, cache=dest, rerun="pixelctl reproduce … --fetch-data")
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\nor build warm-start data with pixelctl synth") from None
    return {kind: dest / kind for kind in DATASETS}


def has_gpus() -> bool:
    from pixelctl.envinfo import devices

    return bool(devices()["gpus"]) or shutil.which("nvidia-smi") is not None
