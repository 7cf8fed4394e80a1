"""Zero-signal filtering and Selective Sample Replay (SPEC §5).

A GRPO group whose rewards are all equal has zero advantage everywhere: it costs a forward and
backward pass and teaches nothing. Two remedies, both pure and seedable:

``filter_zero_signal`` (the reference scripts): drop uniform groups and refill the batch to its
size by repeating the kept groups: whole copies first, then a random subset for the remainder,
so repeat counts differ by at most one. A batch where every group is uniform is left alone
(the step then trains on nothing, but the schedule and counters stay aligned).
"Uniform" is the reference's test: mean absolute deviation from the group mean below ``tol``
(0.01), which also catches groups that differ only by a penalty crumb; ``tol=0`` means
exactly equal.

``SelectiveSampleReplay`` (the paper, after VL-Rethinker): a bounded FIFO buffer of samples
with non-zero advantage, kept across rounds. Each batch takes the current round's non-zero
samples, drawn with replacement with probability ∝ |A| when there are more than the batch
needs, otherwise all of them, and fills the remaining slots from the samples buffered in
*earlier* rounds with probability ∝ |A| + ε. Then the current samples join the buffer.
(VL-Rethinker's code resamples within one round only; SPEC §5 states the cross-round buffer.)
Its state, buffer and random generator included, goes into checkpoints via
``state_dict``/``load_state_dict`` so a resumed run draws the same batches.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")


def is_uniform(rewards: Sequence[float], tol: float = 0.01) -> bool:
    """True when a group carries no learning signal (mean |r - mean| < tol, or all equal)."""
    values = [float(r) for r in rewards]
    if max(values) == min(values):
        return True
    mean = math.fsum(values) / len(values)
    return math.fsum(abs(v - mean) for v in values) / len(values) < tol


@dataclass(frozen=True)
class FilterResult:
    """Group indices of the refilled batch, and what happened on the way (for logging)."""

    indices: list[int]
    uniform: list[int]
    dropped: list[int]

    @property
    def n_refilled(self) -> int:
        return len(self.dropped)


def filter_zero_signal(
    rewards: Sequence[float],
    group_size: int,
    *,
    tol: float = 0.01,
    seed: int | None = None,
) -> FilterResult:
    """Drop uniform groups of a flat reward list and refill to the original number of groups.

    Returns group indices (not sample indices): the caller reorders its own samples. The
    remainder after whole copies is a seeded random subset of the kept groups, or the first
    kept groups when ``seed`` is None.
    """
    if group_size < 1 or len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    n_groups = len(rewards) // group_size
    groups = [rewards[i * group_size : (i + 1) * group_size] for i in range(n_groups)]
    uniform = [i for i, g in enumerate(groups) if is_uniform(g, tol)]
    kept = sorted(set(range(n_groups)) - set(uniform))
    if not kept or not uniform:  # nothing to drop, or nothing to keep: leave the batch alone
        return FilterResult(list(range(n_groups)), uniform, [])
    copies, remainder = divmod(n_groups, len(kept))
    extra = kept[:remainder] if seed is None else random.Random(seed).sample(kept, remainder)
    return FilterResult(kept * copies + sorted(extra), uniform, uniform)


@dataclass
class ReplayStats:
    """What the last ``select`` did."""

    n_current: int = 0
    n_nonzero: int = 0
    n_from_current: int = 0
    n_from_buffer: int = 0
    buffer_size: int = 0


class SelectiveSampleReplay(Generic[T]):
    """Selective Sample Replay over arbitrary samples (dicts, ids, experience objects)."""

    def __init__(self, capacity: int = 4096, *, eps: float = 1e-4, seed: int = 0) -> None:
        if capacity < 0 or eps < 0:
            raise ValueError("capacity and eps must be non-negative")
        self.capacity = capacity
        self.eps = eps
        self.rng = np.random.default_rng(seed)
        self.buffer: list[tuple[T, float]] = []
        self.last = ReplayStats()

    def _draw(self, pool: Sequence[tuple[T, float]], k: int, eps: float) -> list[T]:
        weights = np.array([abs(a) + eps for _, a in pool], dtype=np.float64)
        picks = self.rng.choice(len(pool), size=k, replace=True, p=weights / weights.sum())
        return [pool[i][0] for i in picks]

    def select(self, samples: Sequence[T], advantages: Sequence[float], batch_size: int) -> list[T]:
        """The next training batch of ``batch_size`` samples; updates the buffer.

        With no signal anywhere (no non-zero sample now and an empty buffer) the current
        samples come back unchanged, like ``filter_zero_signal`` on an all-uniform batch.
        """
        if len(samples) != len(advantages):
            raise ValueError(f"{len(samples)} samples but {len(advantages)} advantages")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        current = [(s, float(a)) for s, a in zip(samples, advantages, strict=True) if a != 0]
        if len(current) >= batch_size:
            batch = self._draw(current, batch_size, 0.0)
            from_buffer = 0
        elif not current and not self.buffer:
            batch, from_buffer = list(samples), 0
        else:
            batch = [s for s, _ in current]
            pool = self.buffer or current  # first round: repeat the current samples
            from_buffer = batch_size - len(batch) if self.buffer else 0
            batch += self._draw(pool, batch_size - len(batch), self.eps)
        self.buffer = (self.buffer + current)[-self.capacity :] if self.capacity else []
        self.last = ReplayStats(
            len(samples), len(current), len(batch) - from_buffer, from_buffer, len(self.buffer)
        )
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue identically: settings, buffer and generator state."""
        return {
            "capacity": self.capacity,
            "eps": self.eps,
            "buffer": [[s, a] for s, a in self.buffer],
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from ``state_dict``; the buffer holds the very objects that were saved."""
        self.capacity = int(state["capacity"])
        self.eps = float(state["eps"])
        self.buffer = [(s, float(a)) for s, a in state["buffer"]]
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
