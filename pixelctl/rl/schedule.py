"""The round and step arithmetic of an RL run, one copy for `validate`, both engines and the plan.

What OpenRLHF 0.11.2 runs (read from its `PPOTrainer.fit`, `SamplesGenerator` and
`prepare_datasets`), and what the local engine now runs too:

- an *episode* is one pass over the prompt pool; its prompts are drawn in a fresh shuffled
  order, ``prompts_per_round`` at a time. The prompt loader has batch size 1, so nothing is
  dropped: the last round of an episode takes the remainder (a *partial round*). Rounds per
  episode = ceil(prompts / prompts_per_round); rounds = that × episodes. (The old dry run's
  ``prompts × episodes // prompts_per_round`` laid episodes end to end and dropped the tail.)
- a round of k prompts gives k × n_samples trajectories and ``k × n_samples // batch_size``
  optimizer steps (the actor's loader drops an incomplete last batch). Full rounds divide
  evenly (the schema checks it), so an episode has ``prompts × n_samples // batch_size``
  steps: exactly OpenRLHF's ``max_steps`` per episode, the lr scheduler's horizon.
- warm-up steps = ceil(total steps × warmup_ratio); the learning-rate factor is transformers'
  ``cosine_with_min_lr`` (linear warm-up from 0, cosine to ``min_lr_ratio``) or ``constant``
  (no warm-up), which is what OpenRLHF asks DeepSpeed for; ``lr_factor`` reproduces it.
- OpenRLHF's ``global_step`` counts rounds, not optimizer steps.

``rl.max_rounds`` (M > 0) reaches both engines the same way:
- M below one episode's rounds: the pool is the *first* M × prompts_per_round prompts, one
  episode (OpenRLHF: ``--data.max_samples``, ``--train.num_episodes 1``);
- M a whole number of episodes: that many episodes (``--train.num_episodes``);
- otherwise only the local engine can stop mid-episode; for OpenRLHF it is a problem that
  ``validate`` reports (``openrlhf_problem``) and ``pixelctl rl`` refuses.

Pure: no torch. ``plan_schedule(rl, n_prompts)`` takes the recipe's ``rl`` section and the
prompt count (``rl.expected_prompts`` before the data is read).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Schedule:
    pool: int  # prompts each episode shuffles and consumes
    episodes: int  # episodes started
    rounds: int  # rounds run in total
    prompts_per_round: int
    n_samples: int
    batch_size: int
    warmup_ratio: float
    available: int  # prompts in the data (or rl.expected_prompts)
    max_rounds: int  # the recipe's cap (-1: none)

    # ------------------------------------------------------------------ rounds
    @property
    def rounds_per_episode(self) -> int:
        return math.ceil(self.pool / self.prompts_per_round)

    @property
    def last_round_prompts(self) -> int:
        """Prompts in the last round of an episode (== prompts_per_round unless partial)."""
        return self.pool - (self.rounds_per_episode - 1) * self.prompts_per_round

    def round_size(self, r: int) -> int:
        """Prompts in round r (0-based)."""
        last = r % self.rounds_per_episode == self.rounds_per_episode - 1
        return self.last_round_prompts if last else self.prompts_per_round

    def round_prompts(self, r: int, seed: int) -> list[int]:
        """Indices (into the first ``pool`` prompts) of round r: episode e shuffles the pool with
        ``seed + e``; round r takes its slice of that order."""
        episode, k = divmod(r, self.rounds_per_episode)
        order = list(range(self.pool))
        random.Random(seed + episode).shuffle(order)
        return order[k * self.prompts_per_round : (k + 1) * self.prompts_per_round]

    # ------------------------------------------------------------------ steps
    @property
    def steps_per_round(self) -> int:
        """Optimizer steps of a full round."""
        return self.prompts_per_round * self.n_samples // self.batch_size

    def steps_in_round(self, r: int) -> int:
        return self.round_size(r) * self.n_samples // self.batch_size

    @property
    def total_steps(self) -> int:
        full, rest = divmod(self.rounds, self.rounds_per_episode)
        per_episode = self.pool * self.n_samples // self.batch_size
        return full * per_episode + sum(self.steps_in_round(r) for r in range(rest))

    @property
    def warmup_steps(self) -> int:
        return math.ceil(self.total_steps * self.warmup_ratio)

    def lr_factor(self, step: int, *, min_lr_ratio: float, kind: str) -> float:
        """The learning-rate multiplier at optimizer step ``step`` (0-based), as transformers'
        ``get_scheduler("cosine_with_min_lr" | "constant")`` computes it for OpenRLHF."""
        if kind == "constant":
            return 1.0
        warmup, total = self.warmup_steps, self.total_steps
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, factor * (1 - min_lr_ratio) + min_lr_ratio)

    # ------------------------------------------------------------------ OpenRLHF
    @property
    def openrlhf_problem(self) -> str | None:
        """Why OpenRLHF cannot run exactly this schedule, with the fix; None when it can."""
        rpe = self.rounds_per_episode
        if self.pool == self.available and self.rounds % rpe:
            return (
                f"rl.max_rounds={self.max_rounds} stops mid-episode ({rpe} rounds per episode of "
                f"{self.available} prompts), which OpenRLHF cannot do; use at most {rpe - 1}, "
                f"or a multiple of {rpe}"
            )
        return None

    @property
    def max_samples(self) -> int | None:
        """``--data.max_samples`` when rl.max_rounds shrinks the pool, else None."""
        return self.pool if self.pool < self.available else None

    def describe(self) -> str:
        """The rounds, as validate and the dry runs print them."""
        text = (
            f"{self.rounds} rounds: {self.episodes} episode(s) × {self.rounds_per_episode} rounds "
            f"of {self.prompts_per_round} prompts (ceil({self.pool} / {self.prompts_per_round}))"
        )
        if self.last_round_prompts != self.prompts_per_round:
            text += f"; each episode's last round has {self.last_round_prompts} prompts"
        if self.max_rounds > 0:
            text += f"; capped by rl.max_rounds={self.max_rounds}"
        return text

    def as_dict(self) -> dict[str, Any]:
        derived = ("rounds_per_episode", "steps_per_round", "total_steps", "warmup_steps")
        return {**asdict(self), **{k: getattr(self, k) for k in derived}}


def plan_schedule(rl: Any, n_prompts: int) -> Schedule:
    """The schedule of a recipe's ``rl`` section (``RLConfig``) over ``n_prompts`` prompts."""
    ro, o = rl.rollout, rl.optim
    n_prompts = max(int(n_prompts), 1)
    per_episode = math.ceil(n_prompts / ro.prompts_per_round)
    cap = rl.max_rounds
    if 0 < cap < per_episode:
        pool, rounds = cap * ro.prompts_per_round, cap
    else:
        pool, rounds = n_prompts, per_episode * o.episodes
        if cap > 0:
            rounds = min(rounds, cap)
    return Schedule(
        pool=pool,
        episodes=math.ceil(rounds / math.ceil(pool / ro.prompts_per_round)),
        rounds=rounds,
        prompts_per_round=ro.prompts_per_round,
        n_samples=ro.n_samples,
        batch_size=o.batch_size,
        warmup_ratio=o.warmup_ratio,
        available=n_prompts,
        max_rounds=cap,
    )
