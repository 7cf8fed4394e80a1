"""The round's training set, chosen one way for both engines (docs/rewards.md, docs/method.md).

``select_training_set`` is the single entry point: the local engine (`engines/local/loop.py`)
and the OpenRLHF hook (`engines/openrlhf/hook.py`) hand it the same things (the round's shaped
rewards and advantages in prompt order, groups of ``group_size`` consecutive samples, and one
opaque *payload* per sample: a trajectory id for the local engine, an `Experience` item for
OpenRLHF) and train on exactly what it returns. One behaviour, in this order:

1. **Zero-signal filter** (``zero_signal_filter``): a group whose *shaped rewards* are uniform
   (``is_uniform``: mean |r - mean| < ``tol`` = 0.01, the reference's test, which also catches
   groups that differ only by a penalty crumb) carries no signal; its advantages count as 0 for
   the selection below (the samples keep their own advantages for the loss).
2. **Selective Sample Replay** (``ssr``): the round's batch (as many samples as the round
   produced) takes the non-zero-advantage samples of this round, drawn ∝ |A| if there are more
   than the batch holds, else all of them, and fills the rest from the payloads buffered in
   *earlier* rounds ∝ |A| + ε (in the first round, by repeating this round's). Then this
   round's non-zero samples join the bounded FIFO buffer.
3. **Refill by repetition** only when SSR is off: uniform groups are dropped and the batch is
   refilled to its size with whole copies of the kept groups, then a seeded subset for the
   remainder (``filter_zero_signal``, the reference scripts). With SSR on, SSR does the
   refilling; it never runs over a repeated list (a group repeated before SSR would be drawn,
   and buffered, once per copy).

A round with no signal anywhere (every group uniform, empty buffer) trains on the round as it
is: the schedule and the counters stay aligned. Seeds: the refill subset of round r uses
``seed + r``; SSR's generator is seeded once with ``seed`` and then carried (it is in the
checkpoint via ``state_dict``), so a resumed local run draws the same batches. ``seed`` is
``rl.seed`` on both engines.

``SelectiveSampleReplay`` (the paper, after VL-Rethinker): VL-Rethinker's code resamples within
one round only; the paper (docs/method.md) states the cross-round buffer, which this follows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
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

    def _draw(self, pool: Sequence[tuple[Any, float]], k: int, eps: float) -> list[Any]:
        weights = np.array([abs(a) + eps for _, a in pool], dtype=np.float64)
        picks = self.rng.choice(len(pool), size=k, replace=True, p=weights / weights.sum())
        return [pool[i][0] for i in picks]

    def select(self, samples: Sequence[T], advantages: Sequence[float], batch_size: int) -> list[T]:
        """The next training batch of ``batch_size`` samples; updates the buffer.

        With no signal anywhere (no non-zero sample now and an empty buffer) the current
        samples come back unchanged, like ``filter_zero_signal`` on an all-uniform batch.
        """
        return [payload for _, payload in self.select_marked(samples, advantages, batch_size)]

    def select_marked(
        self, samples: Sequence[T], advantages: Sequence[float], batch_size: int
    ) -> list[tuple[int | None, T]]:
        """``select``, each pick marked with its index in ``samples`` (None: from the buffer)."""
        if len(samples) != len(advantages):
            raise ValueError(f"{len(samples)} samples but {len(advantages)} advantages")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        current = [(i, float(a)) for i, a in enumerate(advantages) if a != 0]
        if len(current) >= batch_size:
            picks: list[int | None] = self._draw(current, batch_size, 0.0)
            chosen = [(i, samples[i]) for i in picks]
            from_buffer = 0
        elif not current and not self.buffer:
            chosen, from_buffer = list(enumerate(samples)), 0
        else:
            chosen = [(i, samples[i]) for i, _ in current]
            need = batch_size - len(chosen)
            if self.buffer:
                chosen += [(None, s) for s in self._draw(self.buffer, need, self.eps)]
                from_buffer = need
            else:  # first round: repeat the current samples
                chosen += [(i, samples[i]) for i in self._draw(current, need, self.eps)]
                from_buffer = 0
        fresh = [(samples[i], a) for i, a in current]
        self.buffer = (self.buffer + fresh)[-self.capacity :] if self.capacity else []
        self.last = ReplayStats(
            len(samples), len(current), len(chosen) - from_buffer, from_buffer, len(self.buffer)
        )
        return chosen

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


# ---------------------------------------------------------------------------- the one entry point
@dataclass(frozen=True)
class SelectionSettings:
    """``rl.replay`` plus ``rl.seed``: everything ``select_training_set`` reads."""

    ssr: bool = True
    zero_signal_filter: bool = True
    capacity: int = 4096
    epsilon: float = 0.01
    seed: int = 42
    tol: float = 0.01  # the reference's "uniform group" tolerance (mean |r - mean|)

    REQUIRED = ("ssr", "zero_signal_filter", "capacity", "epsilon", "seed")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SelectionSettings:
        """From the recipe's JSON (``rl.replay`` + ``seed``); a missing key is an error, never a
        default, so a job cannot silently train with other settings than its recipe's."""
        missing = [k for k in cls.REQUIRED if k not in data]
        if missing:
            raise ValueError(f"replay settings lack {', '.join(missing)}: {dict(data)!r}")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @classmethod
    def from_recipe(cls, rl: Any) -> SelectionSettings:
        """From a recipe's ``rl`` section (``pixelctl.config.schema.RLConfig``)."""
        return cls.from_mapping({**rl.replay.model_dump(), "seed": rl.seed})

    def make_replay(self) -> SelectiveSampleReplay:
        """The SSR buffer both engines keep across rounds, built the same way."""
        return SelectiveSampleReplay(self.capacity, eps=self.epsilon, seed=self.seed)


@dataclass(frozen=True)
class Selection(Generic[T]):
    """The round's training set: payloads in training order, where each came from, and counts."""

    payloads: list[T]
    indices: list[int | None]  # index in this round's samples; None = from an earlier round
    n_samples: int  # samples the round produced
    uniform_groups: int  # groups with no signal (when the filter is on)
    n_nonzero: int  # this round's samples with signal
    n_refilled_groups: int  # copies added by refill-by-repetition (SSR off)
    n_from_buffer: int  # picks from earlier rounds (SSR on)
    buffer_size: int

    @property
    def replayed(self) -> list[bool]:
        return [i is None for i in self.indices]

    def counts(self) -> dict[str, float]:
        """For the metrics line: the same keys on both engines."""
        return {
            "filtered_groups": float(self.uniform_groups),
            "nonzero_samples": float(self.n_nonzero),
            "refilled_groups": float(self.n_refilled_groups),
            "replayed": float(self.n_from_buffer),
            "buffer_size": float(self.buffer_size),
        }


def select_training_set(
    rewards: Sequence[float],
    advantages: Sequence[float],
    payloads: Sequence[T],
    *,
    group_size: int,
    round_index: int,
    settings: SelectionSettings,
    replay: SelectiveSampleReplay | None = None,
) -> Selection[T]:
    """The samples to train on this round (as many as the round produced; module docstring).

    ``rewards`` are the shaped rewards (the filter's input), ``advantages`` the group-relative
    advantages (SSR's weights), both in prompt order with groups of ``group_size``;
    ``payloads`` is what the caller wants back (and what the buffer stores). ``replay`` is the
    caller's SSR buffer (``settings.make_replay()``), required when ``settings.ssr``.
    """
    n = len(rewards)
    if not (n == len(advantages) == len(payloads)):
        raise ValueError(f"{n} rewards, {len(advantages)} advantages, {len(payloads)} payloads")
    if group_size < 1 or n % group_size:
        raise ValueError(f"{n} samples do not split into groups of {group_size}")
    if settings.ssr and replay is None:
        raise ValueError("settings.ssr is on but no SelectiveSampleReplay was given")
    groups = n // group_size
    uniform = (
        [
            g
            for g in range(groups)
            if is_uniform(rewards[g * group_size : (g + 1) * group_size], settings.tol)
        ]
        if settings.zero_signal_filter
        else []
    )
    signal = [float(a) for a in advantages]
    for g in uniform:
        signal[g * group_size : (g + 1) * group_size] = [0.0] * group_size
    n_nonzero = sum(a != 0 for a in signal)
    refilled, from_buffer = 0, 0
    if settings.ssr:
        assert replay is not None
        marked = replay.select_marked(list(payloads), signal, n)
        indices = [i for i, _ in marked]
        chosen = [p for _, p in marked]
        from_buffer, buffer_size = replay.last.n_from_buffer, len(replay.buffer)
    else:
        if settings.zero_signal_filter:
            kept = filter_zero_signal(
                rewards, group_size, tol=settings.tol, seed=settings.seed + round_index
            )
            order, refilled = kept.indices, kept.n_refilled
        else:
            order = list(range(groups))
        indices = [g * group_size + k for g in order for k in range(group_size)]
        chosen = [payloads[i] for i in indices]
        buffer_size = 0
    return Selection(
        payloads=chosen,
        indices=indices,
        n_samples=n,
        uniform_groups=len(uniform),
        n_nonzero=n_nonzero,
        n_refilled_groups=refilled,
        n_from_buffer=from_buffer,
        buffer_size=buffer_size,
    )
