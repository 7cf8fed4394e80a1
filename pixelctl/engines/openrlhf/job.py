"""The `ray job submit … -- python -m openrlhf.cli.train_ppo_ray …` command for a recipe.

The runtime env carries everything a worker needs, so no node depends on its own defaults
(settings that never reached the workers silently broke V* reproductions of the reference):
- `py_modules`: the driver's pixelctl package, so the agent plugin (inside every vLLM engine)
  and the patched trainer run exactly the driver's code;
- `env_vars`: the executor settings with both pixel-bound presets, the prompt mode, and the
  reward, rollout and replay sections, one JSON variable each. The plugin refuses to start
  without them.
Paths are absolute and must be visible on every node (shared storage: the data, the images,
the run directory). Ray's job upload is for code only (≤ 100 MiB): data goes by path.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from pixelctl.config.schema import Recipe
from pixelctl.engines.openrlhf.flags import (
    RunPaths,
    actor_ranks,
    after_tool_temperature,
    render_flags,
)

EXECUTOR_ENV = "PIXELCTL_EXECUTOR_JSON"
PROMPT_ENV = "PIXELCTL_PROMPT_MODE"
REWARD_ENV = "PIXELCTL_REWARD_JSON"
ROLLOUT_ENV = "PIXELCTL_ROLLOUT_JSON"
REPLAY_ENV = "PIXELCTL_REPLAY_JSON"
SCHEDULE_ENV = "PIXELCTL_SCHEDULE_JSON"
SETUP_HOOK = "pixelctl.engines.openrlhf.patchcheck.worker_setup"
# What `openrlhf/cli/train_ppo_ray.py` passes to its own `ray.init(runtime_env={"env_vars": …})`
# inside the job driver (tests/test_openrlhf_job.py reads them from the installed source).
DRIVER_ENV_KEYS = ("TOKENIZERS_PARALLELISM", "NCCL_DEBUG", "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS")
ENTRYPOINT_ENV = {"TOKENIZERS_PARALLELISM": "false"}  # set in the entrypoint's own environment


def _dump(model) -> str:
    return json.dumps(model.model_dump(mode="json"), sort_keys=True)


def env_vars(recipe: Recipe) -> dict[str, str]:
    """The variables every worker gets (the plugin and the patched trainer read them)."""
    rl = recipe.rl
    replay = {**rl.replay.model_dump(mode="json"), "seed": rl.seed}
    return {
        EXECUTOR_ENV: _dump(recipe.executor),
        PROMPT_ENV: recipe.prompt.mode,
        REWARD_ENV: _dump(rl.reward),
        # later turns sample at rl.rollout.temperature (flags.after_tool_temperature)
        ROLLOUT_ENV: json.dumps(
            {
                **rl.rollout.model_dump(mode="json"),
                "temperature_after_tool": after_tool_temperature(recipe),
            },
            sort_keys=True,
        ),
        REPLAY_ENV: json.dumps(replay, sort_keys=True),
        SCHEDULE_ENV: json.dumps(schedule_settings(recipe), sort_keys=True),
    }


def schedule_settings(recipe: Recipe) -> dict:
    """What the hook needs to know about the layout: the data-parallel ranks a round splits
    over, and the checkpoint cadence (the SSR buffer is saved with each checkpoint)."""
    return {"ranks": actor_ranks(recipe), "save_every_rounds": recipe.rl.save_every_rounds}


def runtime_env(recipe: Recipe, paths: RunPaths) -> dict:
    """Ray runtime env of the job: our code and our settings on every worker, and the patch
    check that runs in every worker process before its first task (patchcheck.py).

    `env_vars` never holds a key that `train_ppo_ray` puts in its own `ray.init(runtime_env=…)`
    (DRIVER_ENV_KEYS): Ray refuses to merge a job env and a driver env that share a key, and the
    job would die in `ray.init`. TOKENIZERS_PARALLELISM reaches the workers through the
    entrypoint's environment instead (`train_ppo_ray` reads it with `os.environ.get`).
    """
    env = env_vars(recipe)
    clash = sorted(set(env) & set(DRIVER_ENV_KEYS))
    if clash:  # a programming error: the job could never start
        raise ValueError(f"{clash} would clash with train_ppo_ray's ray.init runtime env")
    return {
        "py_modules": [paths.pixelctl_dir],
        "env_vars": env,
        "worker_process_setup_hook": SETUP_HOOK,
    }


def default_model(recipe: Recipe) -> str:
    """The starting checkpoint as written in the recipe, without touching the disk: an SFT
    run directory stands for its `model/` (the run resolves it for real, with
    `pixelctl.models.resolve_model`)."""
    if recipe.rl.init_from:
        return str(Path(recipe.rl.init_from) / "model")
    return recipe.model.name_or_path


def run_paths(
    recipe: Recipe,
    run_dir: Path,
    *,
    model: str | None = None,
    pixelctl_dir: str | Path | None = None,
    resume: bool = False,
) -> RunPaths:
    """Where this run's files live; `model`/`pixelctl_dir` default to the recipe and this
    installation (tests pass fixed values so golden files do not depend on the machine)."""
    if pixelctl_dir is None:
        import pixelctl

        pixelctl_dir = Path(pixelctl.__file__).resolve().parent
    return RunPaths(
        model=model or default_model(recipe),
        prompt_data=str(run_dir / "data" / "prompts.jsonl"),
        agent_plugin=str(run_dir / "job" / "agent_plugin.py"),
        output_dir=str(run_dir / "checkpoints" / "final"),
        ckpt_dir=str(run_dir / "checkpoints"),
        tensorboard_dir=str(run_dir / "tensorboard"),
        pixelctl_dir=str(pixelctl_dir),
        resume=resume,
    )


def submit_argv(recipe: Recipe, paths: RunPaths) -> list[str]:
    env = json.dumps(runtime_env(recipe, paths), sort_keys=True)
    return [
        "ray",
        "job",
        "submit",
        "--address",
        recipe.launch.rl.ray_address,
        "--runtime-env-json",
        env,
        "--",
        *entrypoint_argv(recipe, paths),
    ]


def entrypoint_argv(recipe: Recipe, paths: RunPaths) -> list[str]:
    """The job's entrypoint: `env TOKENIZERS_PARALLELISM=false python -m …train_ppo_ray FLAGS`."""
    env = [f"{k}={v}" for k, v in ENTRYPOINT_ENV.items()]
    return ["env", *env, "python", "-m", "openrlhf.cli.train_ppo_ray", *render_flags(recipe, paths)]


def check_paths(paths: RunPaths) -> None:
    """OpenRLHF splits `--data.prompt_dataset` on `,` (several datasets) and `@` (a data dir):
    a run directory holding either would load something else. Refuse it up front."""
    bad = [c for c in ",@" if c in paths.prompt_data]
    if bad:
        from pixelctl.errors import StageError

        raise StageError(
            f"the run directory {Path(paths.prompt_data).parent.parent} contains "
            f"{' and '.join(repr(c) for c in bad)}, which OpenRLHF's blending_datasets reads as "
            "a dataset separator; set launch.runs_root (or the recipe's file name) to a path "
            "without ',' or '@'"
        )


def render_command(argv: list[str]) -> str:
    """A copy-pasteable shell command, one flag per line."""
    lines, current = [], []
    for tok in argv:
        if tok.startswith("--") and current:
            lines.append(" ".join(current))
            current = []
        current.append(shlex.quote(tok))
    lines.append(" ".join(current))
    return " \\\n  ".join(lines)
