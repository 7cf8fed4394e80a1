"""Numbers a recipe implies: batch arithmetic, step counts and the GPUs it needs.

`validate` prints these so a user sees "16 optimizer steps per rollout round, 1,440 in total, 32
GPUs needed, 32 declared" before a cluster is booked. Inconsistent arithmetic is a problem, not a
warning: a run would fail or silently change its batch size later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pixelctl.config.schema import Recipe


@dataclass(frozen=True)
class Derived:
    stage: str
    name: str
    value: int | float | str
    how: str  # the arithmetic, so the number can be checked by hand


def _devices(layout_gpus: int, device: str) -> int:
    return 1 if device == "cpu" or layout_gpus == 0 else layout_gpus


def derive(recipe: Recipe) -> tuple[list[Derived], list[str]]:
    """Return the derived numbers and the problems (empty when the arithmetic is consistent)."""
    out: list[Derived] = []
    problems: list[str] = []
    _derive_sft(recipe, out, problems)
    _derive_rl(recipe, out, problems)
    problems += ignored_settings(recipe)
    return out, problems


def _derive_sft(r: Recipe, out: list[Derived], problems: list[str]) -> None:
    sft, layout = r.sft, r.launch.sft
    devices = _devices(layout.gpus, r.launch.device)
    per_step = sft.per_device_batch_size * devices
    accum, rest = divmod(sft.global_batch_size, per_step)
    if rest or accum == 0:
        problems.append(
            f"sft.global_batch_size={sft.global_batch_size} is not a multiple of "
            f"sft.per_device_batch_size × devices = {sft.per_device_batch_size} × {devices}; "
            f"use {max(per_step, sft.global_batch_size // per_step * per_step)}"
        )
        accum = max(accum, 1)
    records = r.synth.n_pixel_space + r.synth.n_text_only
    steps_epoch = math.ceil(records / sft.global_batch_size)
    total = sft.max_steps if sft.max_steps > 0 else math.ceil(steps_epoch * sft.epochs)
    out += [
        Derived("sft", "devices", devices, f"launch.sft: {layout.nodes} × {layout.gpus_per_node}"),
        Derived(
            "sft",
            "gradient accumulation",
            accum,
            f"{sft.global_batch_size} / ({sft.per_device_batch_size} × {devices})",
        ),
        Derived(
            "sft",
            "optimizer steps per epoch",
            steps_epoch,
            f"ceil({records} synth records / {sft.global_batch_size})",
        ),
        Derived(
            "sft",
            "total optimizer steps",
            total,
            "sft.max_steps" if sft.max_steps > 0 else f"{steps_epoch} × {sft.epochs} epochs",
        ),
        Derived(
            "sft",
            "warm-up steps",
            math.ceil(total * sft.warmup_ratio),
            f"ceil({total} × {sft.warmup_ratio})",
        ),
    ]


def ignored_settings(r: Recipe) -> list[str]:
    """Settings the chosen RL engine would ignore, each as a problem naming its key and the fix.

    A value that does not change what the engine does (a zero coefficient, ZeRO stage 0 on one
    process, a key left at its default) is not reported; a written one the engine cannot honour
    is, because a run that silently drops a setting is not the run its recipe describes."""
    rl, problems = r.rl, []
    if rl.engine != "local":
        return problems
    local = "the local engine"
    fix = "or use rl.engine=openrlhf"
    written = rl.rollout.model_fields_set
    for key, what in (
        ("max_prompt_tokens", "checks no prompt length (OpenRLHF's data conversion does)"),
        ("micro_batch_size", "generates every rollout of a round in one batch"),
    ):
        if key in written:
            problems.append(
                f"rl.rollout.{key}={getattr(rl.rollout, key)}: {local} {what}; "
                f"remove rl.rollout.{key} from the recipe, {fix}"
            )
    o = rl.optim
    if "zero_stage" in o.model_fields_set and o.zero_stage != 0:
        problems.append(
            f"rl.optim.zero_stage={o.zero_stage}: {local} runs one process without DeepSpeed; "
            f"set rl.optim.zero_stage=0, {fix}"
        )
    if "gradient_checkpointing" in o.model_fields_set and o.gradient_checkpointing:
        problems.append(
            f"rl.optim.gradient_checkpointing=true: {local} does not checkpoint activations; "
            f"set rl.optim.gradient_checkpointing=false, {fix}"
        )
    return problems


def _derive_rl(r: Recipe, out: list[Derived], problems: list[str]) -> None:
    from pixelctl.rl.schedule import plan_schedule

    rl, layout = r.rl, r.launch.rl
    s = plan_schedule(rl, rl.expected_prompts)  # the arithmetic both engines run
    per_round = rl.rollout.prompts_per_round * rl.rollout.n_samples
    out += [
        Derived(
            "rl",
            "trajectories per round",
            per_round,
            f"{rl.rollout.prompts_per_round} prompts × {rl.rollout.n_samples} samples",
        ),
        Derived(
            "rl",
            "optimizer steps per round",
            s.steps_per_round,
            f"{per_round} / optim.batch_size {rl.optim.batch_size}",
        ),
        Derived("rl", "rounds", s.rounds, s.describe()),
        Derived(
            "rl",
            "total optimizer steps",
            s.total_steps,
            f"{s.episodes} × floor({s.pool} × {rl.rollout.n_samples} / {rl.optim.batch_size})"
            if s.rounds % s.rounds_per_episode == 0
            else f"the steps of {s.rounds} rounds",
        ),
        Derived(
            "rl",
            "warm-up steps",
            s.warmup_steps,
            f"ceil({s.total_steps} × {rl.optim.warmup_ratio})",
        ),
    ]
    if rl.engine != "openrlhf":
        return
    if s.openrlhf_problem:
        problems.append(s.openrlhf_problem)
    vllm = layout.vllm_engines * layout.vllm_tensor_parallel
    # Colocated: actor and engines share every GPU. Otherwise the engines take their own GPUs
    # and the actor gets the rest of the cluster.
    actor = layout.gpus if layout.colocate else layout.gpus - vllm
    needed = max(actor, vllm) if layout.colocate else actor + vllm
    if actor < 1 or needed > layout.gpus:
        problems.append(
            f"launch.rl: {layout.vllm_engines} vLLM engines × TP {layout.vllm_tensor_parallel} "
            f"= {vllm} GPUs do not fit the {layout.gpus} declared "
            f"({'colocated' if layout.colocate else 'not colocated, leaving the actor none'}); "
            "lower launch.rl.vllm_engines, set launch.rl.colocate=true or add nodes"
        )
    per_fwd = rl.optim.micro_batch_size * max(actor, 1)
    accum, rest = divmod(rl.optim.batch_size, per_fwd)
    if rest or accum == 0:
        problems.append(
            f"rl.optim.batch_size={rl.optim.batch_size} is not a multiple of "
            f"rl.optim.micro_batch_size × actor GPUs = {rl.optim.micro_batch_size} × {actor}"
        )
    out += [
        Derived(
            "rl",
            "gradient accumulation",
            max(accum, 1),
            f"{rl.optim.batch_size} / ({rl.optim.micro_batch_size} × {actor} actor GPUs)",
        ),
        Derived(
            "rl",
            "GPUs needed",
            needed,
            f"{'max' if layout.colocate else 'sum'}(actor {actor}, vLLM {vllm})",
        ),
        Derived(
            "rl",
            "GPUs declared",
            layout.gpus,
            f"launch.rl: {layout.nodes} nodes × {layout.gpus_per_node}",
        ),
    ]
    from pixelctl.config import memory  # the OpenRLHF trainer's host memory (pure arithmetic)

    out += [Derived("rl", q, v, how) for q, v, how in memory.rows(r)]
    if warning := memory.estimate(r).warning():
        out.append(Derived("rl", "WARNING", "host memory", warning))
