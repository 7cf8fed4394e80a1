"""What the two OpenRLHF 0.11.2 patches call: group reward shaping and Selective Sample Replay.

The patches stay two lines each; the logic lives here, tested on CPU with real `Experience`
objects. Both read their settings from the job's runtime env (job.py) and do nothing when it
is absent, so a patched OpenRLHF still runs other projects unchanged.

1. `shape_group_rewards(experiences)` — in `SamplesGenerator._generate_vllm`, on the
   experiences of one prompt (its whole group, right after they are built). It rebuilds each
   rollout's outcome from the agent's `extra_logs` (`pixelctl/correct`, `n_calls`, `is_video`,
   `final_error`), shapes the group with `pixelctl.rl.rewards.shape_group`, and writes the shaped
   reward into `rewards` and `info["reward"]`. `scores` stays accuracy, so dynamic filtering
   and eval keep reading accuracy. RaPR, curiosity and penalty go into `info` (logged).
2. `replay_training_batch(trainer, experiences)` — in `BasePPOTrainer.train_step`, after the
   advantages exist and the rollout stats are taken, before the samples go to the actors.
   With `rl.replay.ssr` it returns as many samples as it got, chosen by
   `pixelctl.rl.selection.SelectiveSampleReplay` (one round = one `select`, the buffer kept on the
   trainer across rounds); with only `zero_signal_filter` it drops uniform groups and refills
   by repetition (`pixelctl.rl.selection.filter_zero_signal`). The sample count is unchanged, so
   OpenRLHF's step count and data-parallel split are too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pixelctl.engines.openrlhf.job import REPLAY_ENV, REWARD_ENV
from pixelctl.rl.rewards import shape_group
from pixelctl.rl.selection import SelectiveSampleReplay, filter_zero_signal, is_uniform

LOG = "pixelctl/"
_OUTCOME_KEYS = ("correct", "n_calls", "is_video", "final_error")


def _scalar(value: Any) -> float:
    return float(value.flatten()[0]) if hasattr(value, "flatten") else float(value)


def _reward_settings() -> dict[str, Any] | None:
    raw = os.environ.get(REWARD_ENV)
    return json.loads(raw) if raw else None


def shape_group_rewards(
    experiences: Sequence[Any], settings: dict[str, Any] | None = None
) -> dict[str, float] | None:
    """Shape the rewards of one prompt's group in place; returns the group stats, or None
    when there is nothing to do (no pixelctl settings, or samples not made by our agent)."""
    settings = settings if settings is not None else _reward_settings()
    if not settings or not experiences:
        return None
    if not all(f"{LOG}correct" in e.info for e in experiences):
        return None
    import torch

    outcomes = [{k: _scalar(e.info[f"{LOG}{k}"]) for k in _OUTCOME_KEYS} for e in experiences]
    for o in outcomes:
        o["n_calls"] = int(o["n_calls"])
    kwargs = {k: settings[k] for k in ("alpha", "beta", "H", "N") if k in settings}
    shaped = shape_group(outcomes, mode=settings.get("mode", "paper"), **kwargs)
    for e, reward, cur, pen in zip(
        experiences, shaped.rewards, shaped.curiosity, shaped.penalty, strict=True
    ):
        e.rewards = torch.tensor([reward], dtype=torch.float32)
        e.info["reward"] = torch.tensor([reward], dtype=torch.float32)
        e.info[f"{LOG}rapr"] = torch.tensor([shaped.stats.rapr])
        e.info[f"{LOG}curiosity"] = torch.tensor([cur])
        e.info[f"{LOG}penalty"] = torch.tensor([pen])
    s = shaped.stats
    return {"rapr": s.rapr, "curiosity": s.curiosity_mean, "penalty": s.penalty_mean}


# ---------------------------------------------------------------------------- replay
@dataclass(frozen=True)
class ReplaySettings:
    ssr: bool = True
    zero_signal_filter: bool = True
    capacity: int = 4096
    epsilon: float = 0.01
    seed: int = 42
    tol: float = 0.01  # the reference's "uniform group" tolerance (mean |r - mean|)

    @classmethod
    def from_env(cls) -> ReplaySettings | None:
        raw = os.environ.get(REPLAY_ENV)
        if not raw:
            return None
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _first_action_value(item: Any) -> float:
    """A sample's advantage: outcome rewards give one value on every action token."""
    mask = item.action_mask.bool()
    return float(item.advantages[mask][0]) if bool(mask.any()) else 0.0


def _flatten(experiences: Sequence[Any]) -> tuple[list[Any], int]:
    """Single-sample experiences in prompt order (groups of n consecutive), and the micro size."""
    from openrlhf.trainer.ppo_utils.experience import split_experience_batch

    pairs = []
    for e in experiences:
        index = (
            list(e.index)
            if e.index is not None
            else [len(pairs) + i for i in range(len(e.sequences))]
        )
        pairs.extend(zip(index, split_experience_batch(e), strict=True))
    pairs.sort(key=lambda p: p[0])
    return [item for _, item in pairs], len(experiences[0].sequences)


def _rebatch(items: list[Any], size: int) -> list[Any]:
    from openrlhf.trainer.ppo_utils.experience import make_experience_batch

    keys = set.intersection(*(set(i.info) for i in items))
    out = []
    for start in range(0, len(items), size):
        chunk = [_with_info(i, keys) for i in items[start : start + size]]
        out.append(make_experience_batch(chunk))
    return out


def _with_info(item: Any, keys: set[str]) -> Any:
    import copy

    clone = copy.copy(item)  # shallow: a replayed sample may appear twice in one batch
    clone.info = {k: v for k, v in item.info.items() if k in keys}
    return clone


def replay_training_batch(trainer: Any, experiences: list[Any]) -> list[Any]:
    """The samples to train on this round (same count), per `rl.replay` (see module doc)."""
    cfg = getattr(trainer, "_pixelctl_replay_settings", None) or ReplaySettings.from_env()
    if cfg is None or not (cfg.ssr or cfg.zero_signal_filter) or not experiences:
        return experiences
    import torch

    trainer._pixelctl_replay_settings = cfg
    n = trainer.args.rollout.n_samples_per_prompt
    items, micro = _flatten(experiences)
    if len(items) % n:
        return experiences  # a partial group (end of data): nothing sound to do
    rewards = [_scalar(i.rewards) for i in items]
    advantages = [_first_action_value(i) for i in items]
    if cfg.zero_signal_filter:  # uniform within tol: no signal, even if float dust remains
        for g in range(len(items) // n):
            if is_uniform(rewards[g * n : (g + 1) * n], cfg.tol):
                advantages[g * n : (g + 1) * n] = [0.0] * n
    if cfg.ssr:
        chosen, replayed = _ssr_select(trainer, cfg, items, advantages)
    else:
        kept = filter_zero_signal(rewards, n, tol=cfg.tol, seed=cfg.seed).indices
        chosen = [items[g * n + k] for g in kept for k in range(n)]
        replayed = [0.0] * len(chosen)
    for item, flag in zip(chosen, replayed, strict=True):
        item.info[f"{LOG}replayed"] = torch.tensor(flag)
    return _rebatch(chosen, micro)


def _ssr_select(trainer: Any, cfg: ReplaySettings, items: list[Any], advantages: list[float]):
    """One SSR draw for the round; the buffer lives on the trainer across rounds."""
    ssr = getattr(trainer, "_pixelctl_ssr", None)
    if ssr is None:
        ssr = trainer._pixelctl_ssr = SelectiveSampleReplay(
            cfg.capacity, eps=cfg.epsilon, seed=cfg.seed
        )
    current = {id(i) for i in items}  # buffered items stay alive, so ids cannot collide
    chosen = ssr.select(items, advantages, len(items))
    return chosen, [float(id(i) not in current) for i in chosen]
