"""What the two OpenRLHF 0.11.2 patches call: group reward shaping and Selective Sample Replay.

The patches stay two lines each; the logic lives here, tested on CPU with real `Experience`
objects. Both read their settings from the job's runtime env (job.py) and do nothing when it
is absent, so a patched OpenRLHF still runs other projects unchanged.

1. `shape_group_rewards(experiences)` — in `SamplesGenerator._generate_vllm`, on the
   experiences of one prompt (its whole group, right after they are built). It rebuilds each
   rollout's `RolloutView` from the agent's `extra_logs` (`pixelctl/correct`, `n_calls`,
   `is_video`, `final_error`; a missing one or a missing reward setting is an error, never a
   default), shapes the group with `pixelctl.rl.rewards.shape_group`, and writes the shaped
   reward into `rewards` and `info["reward"]`. `scores` stays accuracy, so dynamic filtering
   and eval keep reading accuracy. RaPR, curiosity and penalty go into `info` (logged).
2. `replay_training_batch(trainer, experiences)` — in `BasePPOTrainer.train_step`, after the
   advantages exist and the rollout stats are taken, before the samples go to the actors.
   It returns as many samples as it got, chosen by `pixelctl.rl.selection.select_training_set`,
   the very function the local engine calls (zero-signal filter, SSR with its buffer kept on
   the trainer across rounds, or refill by repetition with SSR off; the round number for the
   refill seed is counted on the trainer). The sample count is unchanged, so OpenRLHF's step
   count and data-parallel split are too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pixelctl.engines.openrlhf.job import REPLAY_ENV, REWARD_ENV, SCHEDULE_ENV
from pixelctl.rl.rewards import RolloutView, shape_group
from pixelctl.rl.selection import SelectionSettings, select_training_set

LOG = "pixelctl/"
_REWARD_KEYS = ("mode", "alpha", "beta", "H", "N")


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

    views = [RolloutView.from_logs(e.info, LOG) for e in experiences]  # as the plugin logged
    if missing := [k for k in _REWARD_KEYS if k not in settings]:  # never a default
        raise KeyError(f"pixelctl reward settings lack {', '.join(missing)}: {settings!r}")
    kwargs = {k: settings[k] for k in _REWARD_KEYS if k != "mode"}
    shaped = shape_group(views, mode=settings["mode"], **kwargs)
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
ReplaySettings = SelectionSettings  # the `rl.replay` settings, as the job's env carries them


def _replay_settings_from_env() -> SelectionSettings | None:
    raw = os.environ.get(REPLAY_ENV)
    return SelectionSettings.from_mapping(json.loads(raw)) if raw else None


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


def replay_training_batch(
    trainer: Any, experiences: list[Any], global_step: int | None = None
) -> list[Any]:
    """The samples to train on this round (same count), per `rl.replay` (see module doc).

    Around the shared selection (pixelctl's own, engine-specific duties): the first round
    proves that patch 0001 ran in this process; failed samples (`pixelctl/failed`, see
    plugin.failed_response) get a zero advantage; after the selection the SSR buffer is
    pruned by age (`rl.replay.max_age_rounds`) and memory (`rl.replay.max_memory_gb`), and
    saved next to the checkpoint OpenRLHF is about to write (`global_step` counts rounds)."""
    cfg = getattr(trainer, "_pixelctl_replay_settings", None) or _replay_settings_from_env()
    if cfg is None or not (cfg.ssr or cfg.zero_signal_filter) or not experiences:
        return experiences
    import torch

    trainer._pixelctl_replay_settings = cfg
    n = trainer.args.rollout.n_samples_per_prompt
    items, micro = _flatten(experiences)
    if not getattr(trainer, "_pixelctl_checked", False):
        require_group_hook(items)
        trainer._pixelctl_checked = True
    zero_failed(items)
    if len(items) % n:
        return experiences  # a partial group (end of data): nothing sound to do
    limits = ReplayLimits.from_env()
    if cfg.ssr and getattr(trainer, "_pixelctl_ssr", None) is None:
        trainer._pixelctl_ssr = cfg.make_replay()  # the buffer lives on the trainer
        load_replay_state(trainer, global_step)
    round_index = getattr(trainer, "_pixelctl_round", 0)  # rounds seen by this trainer
    trainer._pixelctl_round = round_index + 1
    for item in items:
        item._pixelctl_round = round_index  # the buffer's age cap reads it
    chosen = select_training_set(
        [_scalar(i.rewards) for i in items],
        [_first_action_value(i) for i in items],
        items,
        group_size=n,
        round_index=round_index,
        settings=cfg,
        replay=getattr(trainer, "_pixelctl_ssr", None),
    )
    # buffered items stay alive on the trainer; a replayed one may appear twice in one batch
    batch = [_with_info(item, set(item.info)) for item in chosen.payloads]
    rss = torch.tensor(_rss_gb())  # the trainer's peak RSS, logged each round (host memory)
    for item, replayed in zip(batch, chosen.replayed, strict=True):
        item.info[f"{LOG}replayed"] = torch.tensor(float(replayed))
        item.info[f"{LOG}trainer_rss_gb"] = rss
    ssr = getattr(trainer, "_pixelctl_ssr", None)
    if ssr is not None:
        limits.prune(ssr, round_index)
        if global_step is not None and (global_step + 1) % limits.save_every_rounds == 0:
            save_replay_state(trainer, global_step + 1)
    return _rebatch(batch, micro)


# ---------------------------------------------------------------------------- duties around it
def _rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: KiB


def require_group_hook(items: Sequence[Any]) -> None:
    """Before the first round trains: samples made by our agent must carry the group hook's
    `pixelctl/rapr` (patch 0001, which runs in this same trainer process). Without it the run
    would train on accuracy alone: stop, naming the node."""
    ours = [i for i in items if f"{LOG}correct" in i.info]
    if ours and not any(f"{LOG}rapr" in i.info for i in ours):
        from pixelctl.engines.openrlhf.patchcheck import FIX, PatchesMissing, node_name

        raise PatchesMissing(
            f"pixelctl: the samples of round 1 on node {node_name()} were not shaped by the "
            "group hook (no pixelctl/rapr): OpenRLHF's SamplesGenerator._generate_vllm there "
            f"does not call shape_group_rewards (0001-group-reward-hook.patch). {FIX}."
        )


def zero_failed(items: Sequence[Any]) -> int:
    """Failed samples (a stand-in `<|im_end|>` with reward 0) carry no signal: zero their
    advantage so they neither train nor enter the SSR buffer. Returns how many."""
    count = 0
    for item in items:
        flag = item.info.get(f"{LOG}failed")
        if flag is not None and _scalar(flag) > 0.5:
            if getattr(item, "advantages", None) is not None:
                item.advantages = item.advantages * 0
            count += 1
    return count


def sample_bytes(item: Any) -> int:
    """Bytes of the tensors a sample holds (pixel_values dominate)."""
    total = 0
    values = list(vars(item).values())
    for mm in getattr(item, "mm_train_inputs", None) or []:
        values += list((mm or {}).values()) if isinstance(mm, dict) else [mm]
    for v in values:
        if hasattr(v, "element_size") and hasattr(v, "nelement"):
            total += v.element_size() * v.nelement()
    return total


@dataclass(frozen=True)
class ReplayLimits:
    """The buffer limits the OpenRLHF engine adds to SSR (docs/openrlhf.md, "stale samples")."""

    max_age_rounds: int | None = None
    max_memory_bytes: float | None = None
    save_every_rounds: int = 1

    @classmethod
    def from_env(cls) -> ReplayLimits:
        replay = json.loads(os.environ.get(REPLAY_ENV) or "{}")
        schedule = json.loads(os.environ.get(SCHEDULE_ENV) or "{}")
        gb = replay.get("max_memory_gb")
        return cls(
            max_age_rounds=replay.get("max_age_rounds"),
            max_memory_bytes=gb * 1e9 if gb else None,
            save_every_rounds=int(schedule.get("save_every_rounds", 1)),
        )

    def prune(self, ssr: Any, round_index: int) -> None:
        """Evict what the next round must not replay: samples `max_age_rounds` old or more
        (counted at their next possible use), then the oldest until the bytes fit."""
        buffer = ssr.buffer
        if self.max_age_rounds is not None:
            buffer = [
                (s, a)
                for s, a in buffer
                if round_index - getattr(s, "_pixelctl_round", round_index) < self.max_age_rounds
            ]
        if self.max_memory_bytes is not None:
            sizes = [sample_bytes(s) for s, _ in buffer]
            total, start = sum(sizes), 0
            while start < len(buffer) and total > self.max_memory_bytes:
                total -= sizes[start]
                start += 1
            buffer = buffer[start:]
        ssr.buffer = buffer


def _state_path(trainer: Any) -> str:
    return os.path.join(trainer.args.ckpt.path, "pixelctl_replay.pt")


def save_replay_state(trainer: Any, global_step: int) -> str:
    """The SSR buffer (and its generator, and the round counter) for the checkpoint OpenRLHF
    writes at `global_step`; replaced atomically, one file per run."""
    import torch

    path = _state_path(trainer)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    state = {
        "global_step": global_step,
        "round": getattr(trainer, "_pixelctl_round", 0),
        "ssr": trainer._pixelctl_ssr.state_dict(),
    }
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def load_replay_state(trainer: Any, global_step: int | None) -> bool:
    """On `--ckpt.load_enable`, restore the buffer saved with the checkpoint being resumed."""
    args = getattr(trainer, "args", None)
    if not global_step or not getattr(getattr(args, "ckpt", None), "load_enable", False):
        return False
    path = _state_path(trainer)
    if not os.path.exists(path):
        return False
    import torch

    state = torch.load(path, weights_only=False)
    if state["global_step"] != global_step:  # written after the checkpoint being resumed
        return False
    trainer._pixelctl_ssr.load_state_dict(state["ssr"])
    trainer._pixelctl_round = state["round"]
    return True
