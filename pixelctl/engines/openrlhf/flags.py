"""The one table that maps a recipe to OpenRLHF 0.11.2 `train_ppo_ray` flags.

A reader traces any flag to the recipe key it comes from here, and nowhere else. Golden files
pin the rendered command; a contract test parses it with the pinned OpenRLHF's own parser.
Rows whose value is None are omitted; `True` renders a bare store_true flag, `False` omits it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelctl.config.schema import Recipe
from pixelctl.engines.openrlhf.data import max_images_per_prompt
from pixelctl.models.qwen import PIXEL_UNIT
from pixelctl.rl.schedule import plan_schedule

_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def _actor_gpus_per_node(r: Recipe) -> int:
    """Colocated: every GPU. Otherwise the vLLM engines hold their own GPUs (as derived's
    "GPUs needed" counts them) and the actor gets the rest of each node."""
    rl = r.launch.rl
    if rl.colocate:
        return rl.gpus_per_node
    return rl.gpus_per_node - rl.vllm_engines * rl.vllm_tensor_parallel // rl.nodes


@dataclass(frozen=True)
class Flag:
    flag: str
    source: str  # the recipe key (or the reason) the value comes from, for docs and review
    value: Callable[[Recipe, RunPaths], Any]


@dataclass(frozen=True)
class RunPaths:
    """Paths that come from the run, not the recipe (absolute: every node reads them)."""

    model: str  # the starting checkpoint (SFT output) as the cluster sees it
    prompt_data: str  # the converted OpenRLHF prompt dataset
    agent_plugin: str  # our AgentExecutor file, copied into the run directory
    output_dir: str  # the final HF model: <run>/checkpoints/final, what eval and resume read
    ckpt_dir: str  # periodic checkpoints: <run>/checkpoints/{global_step..._hf, _actor}
    tensorboard_dir: str
    pixelctl_dir: str  # the pixelctl package, shipped to every worker (Ray py_modules)
    resume: bool = False  # continue from ckpt_dir (pixelctl rl --resume)


FLAG_TABLE: tuple[Flag, ...] = (
    # model and layout
    Flag(
        "--actor.model_name_or_path",
        "rl.init_from (an SFT run dir: its model/), else model.name_or_path",
        lambda r, p: p.model,
    ),
    Flag("--actor.num_nodes", "launch.rl.nodes", lambda r, p: r.launch.rl.nodes),
    Flag(
        "--actor.num_gpus_per_node",
        "launch.rl.gpus_per_node (not colocated: minus the vLLM engines' GPUs per node)",
        lambda r, p: _actor_gpus_per_node(r),
    ),
    Flag("--vllm.num_engines", "launch.rl.vllm_engines", lambda r, p: r.launch.rl.vllm_engines),
    Flag(
        "--vllm.tensor_parallel_size",
        "launch.rl.vllm_tensor_parallel",
        lambda r, p: r.launch.rl.vllm_tensor_parallel,
    ),
    Flag(
        "--vllm.gpu_memory_utilization",
        "launch.rl.vllm_gpu_memory_utilization",
        lambda r, p: r.launch.rl.vllm_gpu_memory_utilization,
    ),
    Flag("--train.colocate_all", "launch.rl.colocate", lambda r, p: r.launch.rl.colocate),
    Flag(
        "--vllm.enable_sleep",
        "launch.rl.colocate (engines sleep while the actor trains)",
        lambda r, p: r.launch.rl.colocate,
    ),
    Flag("--ds.enable_sleep", "launch.rl.colocate", lambda r, p: r.launch.rl.colocate),
    Flag("--ds.zero_stage", "rl.optim.zero_stage", lambda r, p: r.rl.optim.zero_stage),
    Flag("--ds.adam_offload", "rl.optim.adam_offload", lambda r, p: r.rl.optim.adam_offload),
    Flag(
        "--ds.param_dtype",
        "model.dtype (bf16/fp16 only: check_recipe)",
        lambda r, p: _DTYPE[r.model.dtype],
    ),
    Flag(
        "--ds.attn_implementation",
        "model.attn_implementation",
        lambda r, p: r.model.attn_implementation,
    ),
    Flag(
        "--actor.gradient_checkpointing_enable",
        "rl.optim.gradient_checkpointing",
        lambda r, p: r.rl.optim.gradient_checkpointing,
    ),
    Flag(
        "--actor.freeze_visual_encoder", "model.freeze_vision", lambda r, p: r.model.freeze_vision
    ),
    # data and the multi-turn agent
    Flag("--data.prompt_dataset", "rl.data (converted)", lambda r, p: p.prompt_data),
    Flag("--data.input_key", "converted dataset layout", lambda r, p: "prompt"),
    Flag(
        "--data.label_key",
        "converted dataset layout (JSON: answer, images, is_video)",
        lambda r, p: "label",
    ),
    Flag("--data.image_key", "converted dataset layout", lambda r, p: "images"),
    Flag(
        "--data.max_images_per_prompt",
        "executor.max_images + 15 (a video's 16 frames count as 16 images in vLLM, 1 in ours)",
        lambda r, p: max_images_per_prompt(r.executor.max_images),
    ),
    Flag(
        "--data.max_len",
        "executor.max_trajectory_tokens + the largest observation (observation_reserve)",
        lambda r, p: max_len(r),
    ),
    Flag("--train.agent_func_path", "pixelctl's AgentExecutor plugin", lambda r, p: p.agent_plugin),
    # rollout
    Flag(
        "--rollout.n_samples_per_prompt",
        "rl.rollout.n_samples",
        lambda r, p: r.rl.rollout.n_samples,
    ),
    Flag(
        "--rollout.batch_size",
        "rl.rollout.prompts_per_round",
        lambda r, p: r.rl.rollout.prompts_per_round,
    ),
    Flag(
        "--rollout.micro_batch_size",
        "rl.rollout.micro_batch_size",
        lambda r, p: r.rl.rollout.micro_batch_size,
    ),
    Flag(
        "--rollout.max_new_tokens",
        "rl.rollout.max_new_tokens",
        lambda r, p: r.rl.rollout.max_new_tokens,
    ),
    Flag("--rollout.temperature", "rl.rollout.temperature", lambda r, p: r.rl.rollout.temperature),
    Flag("--rollout.top_p", "rl.rollout.top_p", lambda r, p: r.rl.rollout.top_p),
    # algorithm: GRPO, mean-centred advantages, no KL, asymmetric clip, token-mean loss.
    # In 0.11.2 `group_norm` always divides by the group std (`--algo.advantage.no_std_norm`
    # only acts on gae/reinforce/reinforce_baseline); `dr_grpo` is reward − group mean, the
    # reference's advantage.
    Flag(
        "--algo.advantage.estimator",
        "rl.optim.std_norm (true: group_norm, false: dr_grpo)",
        lambda r, p: "group_norm" if r.rl.optim.std_norm else "dr_grpo",
    ),
    Flag(
        "--algo.kl.init_coef",
        "rl.optim.kl_coef (0: no reference model)",
        lambda r, p: r.rl.optim.kl_coef,
    ),
    # with a KL term, the one the local engine adds (pixelctl.rl.loss): k3 in the loss, not
    # 0.11.2's default (k1 subtracted from the reward)
    Flag("--algo.kl.use_loss", "rl.optim.kl_coef > 0", lambda r, p: r.rl.optim.kl_coef > 0),
    Flag(
        "--algo.kl.estimator",
        "rl.optim.kl_coef > 0: k3",
        lambda r, p: "k3" if r.rl.optim.kl_coef > 0 else None,
    ),
    Flag(
        "--actor.eps_clip_low_high",
        "rl.optim.clip_low, rl.optim.clip_high",
        lambda r, p: (r.rl.optim.clip_low, r.rl.optim.clip_high),
    ),
    Flag(
        "--actor.loss_agg_mode", "token-level mean (docs/method.md §5)", lambda r, p: "token-mean"
    ),
    Flag(
        "--actor.entropy_coef",
        "rl.optim.entropy_coef",
        lambda r, p: r.rl.optim.entropy_coef or None,
    ),
    # optimisation
    Flag("--train.batch_size", "rl.optim.batch_size", lambda r, p: r.rl.optim.batch_size),
    Flag(
        "--train.micro_batch_size",
        "rl.optim.micro_batch_size",
        lambda r, p: r.rl.optim.micro_batch_size,
    ),
    Flag(
        "--train.num_episodes",
        "rl.optim.episodes, or fewer under rl.max_rounds (pixelctl.rl.schedule)",
        lambda r, p: plan_schedule(r.rl, r.rl.expected_prompts).episodes,
    ),
    Flag("--train.seed", "rl.seed", lambda r, p: r.rl.seed),
    Flag("--actor.adam.lr", "rl.optim.lr", lambda r, p: r.rl.optim.lr),
    Flag("--actor.adam.betas", "rl.optim.adam_betas", lambda r, p: r.rl.optim.adam_betas),
    Flag(
        "--actor.adam.weight_decay", "rl.optim.weight_decay", lambda r, p: r.rl.optim.weight_decay
    ),
    Flag("--actor.max_norm", "rl.optim.grad_clip", lambda r, p: r.rl.optim.grad_clip),
    Flag(
        "--actor.lr_scheduler",
        "rl.optim.lr_scheduler",
        lambda r, p: "cosine_with_min_lr" if r.rl.optim.lr_scheduler == "cosine" else "constant",
    ),
    Flag("--actor.lr_warmup_ratio", "rl.optim.warmup_ratio", lambda r, p: r.rl.optim.warmup_ratio),
    Flag("--actor.min_lr_ratio", "rl.optim.min_lr_ratio", lambda r, p: r.rl.optim.min_lr_ratio),
    # checkpoints and logs. In 0.11.2 `global_step` counts rollout rounds (train_step returns
    # global_step + 1 once per round) and saving tests global_step % save_steps: rounds.
    Flag("--ckpt.output_dir", "the run directory (final model)", lambda r, p: p.output_dir),
    Flag("--ckpt.path", "the run directory (periodic checkpoints)", lambda r, p: p.ckpt_dir),
    Flag("--ckpt.load_enable", "pixelctl rl --resume", lambda r, p: p.resume),
    Flag("--ckpt.save_steps", "rl.save_every_rounds (rounds)", lambda r, p: r.rl.save_every_rounds),
    Flag("--ckpt.save_hf", "HF-format checkpoints for eval", lambda r, p: True),
    Flag(
        "--logger.tensorboard_dir",
        "logging.tensorboard (the run directory's tensorboard/)",
        lambda r, p: p.tensorboard_dir if r.logging.tensorboard else None,
    ),
    # W&B: on only when the key flag is non-empty; it gets a placeholder, the real key goes in
    # the submitted runtime env only (pixelctl/tracking.py says why this is safe in 0.11.2)
    Flag("--logger.wandb.key", "logging.wandb (the key: $WANDB_API_KEY)", lambda r, p: _wandb(r)),
    Flag("--logger.wandb.project", "logging.wandb.project", lambda r, p: _wandb(r, "project")),
    Flag("--logger.wandb.org", "logging.wandb.entity", lambda r, p: _wandb(r, "entity")),
    Flag("--logger.wandb.group", "logging.wandb.group", lambda r, p: _wandb(r, "group")),
    Flag(
        "--logger.wandb.run_name",
        "the run directory's name (also TensorBoard's subfolder)",
        lambda r, p: Path(p.ckpt_dir).parent.name if r.logging.wandb else None,
    ),
)


def _wandb(r: Recipe, field: str | None = None) -> Any:
    if r.logging.wandb is None:
        return None
    if field is None:
        from pixelctl.tracking import WANDB_KEY_PLACEHOLDER

        return WANDB_KEY_PLACEHOLDER
    return getattr(r.logging.wandb, field)


# ---------------------------------------------------------------------------- derived values
OBSERVATION_TEXT_TOKENS = 256  # chat markup + an observation's text (longest: an error message)


def observation_reserve(r: Recipe) -> int:
    """Tokens the largest single observation can add: a crop at the train crop cap, or
    `executor.max_frames` frames at the frame cap (each with its vision start/end markers).

    The executor checks `executor.max_trajectory_tokens` *before* a call, so the context must
    hold that budget plus one observation; OpenRLHF would otherwise drop the images of an
    observation that does not fit and strip their pads while the rollout records them as
    delivered (utils/agent.py). The plugin refuses any observation that still would not fit.
    """
    b = r.executor.bounds.train
    crop = b.crop_max_pixels // PIXEL_UNIT + 2
    frames = r.executor.max_frames * (b.frame_max_pixels // PIXEL_UNIT + 2)
    return max(crop, frames) + OBSERVATION_TEXT_TOKENS


def max_len(r: Recipe) -> int:
    """`--data.max_len` (vLLM's max_model_len and the trainer's truncation length)."""
    return r.executor.max_trajectory_tokens + observation_reserve(r)


def actor_ranks(r: Recipe) -> int:
    """Data-parallel actor ranks a round's samples split over (no ring/tensor parallelism)."""
    return r.launch.rl.nodes * _actor_gpus_per_node(r)


def after_tool_temperature(r: Recipe) -> float | None:
    """The temperature the plugin samples later turns at: none of its own. OpenRLHF 0.11.2's
    actor scores every token at `--rollout.temperature` (models/actor.py divides the logits by
    one temperature), so sampling after a tool call at the reference's 0.9 would train on
    tokens from another policy than the one scored. Every turn samples at
    `rl.rollout.temperature`; the plan says so when the recipe asks for another value."""
    return None


def check_recipe(r: Recipe) -> None:
    """What OpenRLHF 0.11.2 cannot run as written, refused with the field and the fix."""
    from pixelctl.errors import StageError

    problems = []
    if r.model.dtype not in ("bfloat16", "float16"):
        problems.append(
            f"model.dtype={r.model.dtype}: OpenRLHF 0.11.2's --ds.param_dtype takes bf16 or fp16; "
            "set model.dtype=bfloat16 (or use rl.engine=local for float32)"
        )
    ro = r.rl.rollout
    ranks = actor_ranks(r)
    per_round = ro.prompts_per_round * ro.n_samples
    if ranks and per_round % ranks:
        problems.append(
            f"a round's {per_round} samples (rl.rollout.prompts_per_round × n_samples) do not "
            f"divide over {ranks} actor ranks (launch.rl.nodes × gpus_per_node): ZeRO-3 ranks "
            "would run different numbers of forwards and hang; pick sizes that divide"
        )
    if problems:
        raise StageError("the OpenRLHF engine cannot run this recipe:\n  " + "\n  ".join(problems))


def trim_for_ranks(n_prompts: int, r: Recipe) -> int:
    """How many prompts to drop so that the last, partial round of every episode also divides
    over the actor ranks (full rounds do: check_recipe). We trim rather than refuse: the data is
    only counted after conversion, and a few prompts (fewer than ranks / gcd(n, ranks)) are
    cheaper to lose than the run. The dropped prompts are listed in the conversion report."""
    import math

    ranks, n = actor_ranks(r), r.rl.rollout.n_samples
    step = ranks // math.gcd(n, ranks) if ranks else 1
    return n_prompts % step


def _fmt(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def render_flags(recipe: Recipe, paths: RunPaths) -> list[str]:
    """The `train_ppo_ray` argument list for `recipe`, in table order."""
    args: list[str] = []
    for row in FLAG_TABLE:
        value = row.value(recipe, paths)
        if value is None or value is False:
            continue
        args.append(row.flag)
        if value is True:
            continue
        args.extend(_fmt(v) for v in (value if isinstance(value, tuple) else (value,)))
    return args
