"""The curiosity-driven reward of Pixel Reasoner and group-relative advantages (docs/method.md).

Two modes, because the paper's formula and the released code differ and users must be able to
compare against the released checkpoints:

``paper`` (default), per query x and rollout y::

    RaPR(x)       = fraction of x's rollouts that used pixel-space reasoning (n_calls > 0)
    r_curiosity   = max(H - RaPR(x), 0) * 1[y used pixel-space reasoning]
    r_penalty     = min(N - n_calls(y), 0)
    r(x, y)       = r_acc + alpha * r_curiosity + beta * r_penalty

"Used pixel-space reasoning" means ``n_calls > 0``. What ``n_calls`` counts is the recipe's
``rl.reward.count``: ``attempts`` (default) counts every tool-call attempt, malformed, failed
and unexecuted ones included, which is what the reference code counts (the paper gives no
narrower definition); ``executed`` counts only well-formed calls the executor ran
(``n_operations``): a call that did not parse as a known tool counts toward the executor's
operation limit, as in the reference, but is not pixel-space reasoning here.
``r_acc`` is ``max(correct, 0)``: an unparsable answer (-1) is simply wrong. ``final_error`` is ignored (the paper has no such rule).

``reference`` (the authors' OpenRLHF fork), for rollouts with n_calls > 0::

    bonus  = c * max(H - RaPR, 0) / RaPR - beta * (n_calls - N)
    c      = alpha / 4 for images (0.125 at alpha = 0.5), alpha / 3 for videos (1/6)
    r      = correct + bonus     (correct = 1, 0 or -1 for an unparsable answer)

and a correct answer whose last operation failed (``final_error``) scores 0 before the bonus.
The code indexes that flag with a per-group offset (a bug); this uses the intended per-rollout
flag. The code's constants are hard-wired; scaling them with ``alpha`` is pixelctl's choice so
the defaults reproduce the code exactly.

Worked values (n = 8, docs/method.md): RaPR = 1/8 gives curiosity 0.0875 (paper), 0.175 (reference
image), 0.2333 (reference video); RaPR = 2/8 gives 0.025 / 0.025 / 0.0333; RaPR >= 3/8 gives 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["paper", "reference"]
MODES: tuple[str, ...] = ("paper", "reference")


Count = Literal["attempts", "executed"]
COUNTS: tuple[str, ...] = ("attempts", "executed")


@dataclass(frozen=True)
class RolloutView:
    """One rollout as the reward sees it: the record both engines and the viewer build, with
    ``view_rollout`` (agent rollouts), ``RolloutView.from_logs`` (OpenRLHF's ``extra_logs``) or
    ``as_view`` (any mapping or object with these fields).

    ``correct`` is the training-mode grade (1, 0, -1 unparsable); ``n_calls`` is what the
    reward counts as pixel-space reasoning under ``rl.reward.count``; ``n_attempts`` (every
    tool-call attempt) and ``n_operations`` (calls the executor ran) are both counts, kept for
    the logs.
    """

    correct: float
    n_calls: int = 0
    is_video: bool = False
    final_error: bool = False
    n_attempts: int | None = None
    n_operations: int | None = None

    LOG_FIELDS = ("correct", "n_calls", "n_attempts", "n_operations", "is_video", "final_error")
    REQUIRED_LOGS = ("correct", "n_calls", "is_video", "final_error")

    def to_logs(self, prefix: str) -> dict[str, float]:
        """Scalars for OpenRLHF's ``extra_logs`` (the group hook rebuilds the view from them)."""
        out = {f"{prefix}{k}": getattr(self, k) for k in self.LOG_FIELDS}
        return {k: float(v) for k, v in out.items() if v is not None}

    @classmethod
    def from_logs(cls, logs: Mapping[str, Any], prefix: str) -> RolloutView:
        """The view back from ``to_logs`` (values may be 1-element tensors); a missing field is
        an error, never a default."""
        missing = [k for k in cls.REQUIRED_LOGS if f"{prefix}{k}" not in logs]
        if missing:
            raise KeyError(f"rollout logs lack {', '.join(prefix + k for k in missing)}")

        def get(k: str) -> float | None:
            v = logs.get(f"{prefix}{k}")
            return None if v is None else float(v.flatten()[0] if hasattr(v, "flatten") else v)

        def count(k: str) -> int | None:
            v = get(k)
            return None if v is None else int(v)

        return as_view(
            cls(
                correct=get("correct"),  # type: ignore[arg-type]
                n_calls=int(get("n_calls")),  # type: ignore[arg-type]
                is_video=bool(get("is_video")),
                final_error=bool(get("final_error")),
                n_attempts=count("n_attempts"),
                n_operations=count("n_operations"),
            )
        )


def view_rollout(rollout: Any, correct: float, *, count: Count = "attempts") -> RolloutView:
    """The reward's view of an agent rollout, finished or not: a ``pixelctl.agent.Outcome`` or
    ``Rollout``, or anything with ``calls`` (each with ``executed`` and ``name``, None for a
    call that did not parse), ``final_error`` and ``is_video`` (or ``query.is_video``). The one
    place a rollout becomes reward input."""
    if count not in COUNTS:
        raise ValueError(f"unknown rl.reward.count {count!r}; choose one of {COUNTS}")
    calls = list(_field(rollout, "calls", None) or [])
    attempts = len(calls)
    operations = sum(_operation(c) for c in calls)
    video = _field(rollout, "is_video", None)
    if video is None:
        video = _field(_field(rollout, "query", None), "is_video", False)
    return as_view(
        RolloutView(
            correct=correct,
            n_calls=attempts if count == "attempts" else operations,
            is_video=bool(video),
            final_error=bool(_field(rollout, "final_error", False)),
            n_attempts=attempts,
            n_operations=operations,
        )
    )


def _operation(call: Any) -> bool:
    """A well-formed call that the executor ran (successfully or not)."""
    return bool(_field(call, "executed", False)) and _field(call, "name", None) is not None


@dataclass(frozen=True)
class GroupStats:
    """Per-query numbers worth logging next to the shaped rewards."""

    rapr: float
    mean_calls: float
    curiosity_mean: float
    penalty_mean: float
    accuracy: float
    reward_mean: float


@dataclass(frozen=True)
class ShapedGroup:
    """Shaped rewards of one group plus their parts; ``curiosity``/``penalty`` are the weighted
    terms actually added (alpha * r_curiosity and beta * r_penalty in paper mode)."""

    rewards: list[float]
    curiosity: list[float]
    penalty: list[float]
    stats: GroupStats


def _field(outcome: Any, name: str, default: Any) -> Any:
    if isinstance(outcome, Mapping):
        return outcome.get(name, default)
    return getattr(outcome, name, default)


def as_view(outcome: Any) -> RolloutView:
    """Validate one rollout record; a missing ``correct`` is an error, not a silent zero."""
    correct = _field(outcome, "correct", None)
    if correct is None:
        raise ValueError(f"rollout outcome has no 'correct' field: {outcome!r}")
    correct = float(correct)
    if not math.isfinite(correct) or not -1.0 <= correct <= 1.0:
        raise ValueError(f"'correct' must be in [-1, 1], got {correct}")
    n_calls = _field(outcome, "n_calls", 0)
    if isinstance(n_calls, bool) or int(n_calls) != n_calls or n_calls < 0:
        raise ValueError(f"'n_calls' must be a non-negative integer, got {n_calls!r}")
    return RolloutView(
        correct=correct,
        n_calls=int(n_calls),
        is_video=bool(_field(outcome, "is_video", False)),
        final_error=bool(_field(outcome, "final_error", False)),
        n_attempts=_field(outcome, "n_attempts", None),
        n_operations=_field(outcome, "n_operations", None),
    )


def _paper_terms(o: RolloutView, rapr: float, alpha: float, beta: float, H: float, N: int):
    used = o.n_calls > 0
    curiosity = alpha * max(H - rapr, 0.0) if used else 0.0
    penalty = beta * min(N - o.n_calls, 0)
    return max(o.correct, 0.0), curiosity, penalty


def _reference_terms(o: RolloutView, rapr: float, alpha: float, beta: float, H: float, N: int):
    base = 0.0 if (o.correct > 0.5 and o.final_error) else o.correct
    if o.n_calls == 0:
        return base, 0.0, 0.0
    coef = alpha / 3.0 if o.is_video else alpha / 4.0
    return base, coef * max(H - rapr, 0.0) / rapr, -beta * (o.n_calls - N)


def shape_group(
    outcomes: Sequence[Any],
    *,
    mode: Mode = "paper",
    alpha: float = 0.5,
    beta: float = 0.05,
    H: float = 0.3,
    N: int = 1,
) -> ShapedGroup:
    """Shaped rewards of one query's rollouts, with their curiosity/penalty parts and stats.

    Args:
        outcomes: one query's group of rollouts, in order: ``RolloutView``s (``view_rollout``)
            or mappings/objects with ``correct`` (1, 0, -1 unparsable), ``n_calls``,
            ``is_video`` and ``final_error``.
        mode: ``"paper"`` (the formula) or ``"reference"`` (the authors' code).
        alpha, beta, H, N: curiosity weight, penalty weight, target RaPR, free calls.

    Returns:
        ``ShapedGroup``: ``rewards`` (one per rollout, in order), the weighted ``curiosity`` and
        ``penalty`` terms inside them, and ``stats`` for the logs.

    Example: eight rollouts of one question, two of which zoom in (RaPR = 2/8 = 0.25 < H, so
    each of those two earns curiosity 0.5 × (0.3 - 0.25) = 0.025, correct or not); the first
    makes two calls, one more than N, and pays 0.05; the fourth answered unparsably (-1).

    >>> group = [
    ...     {"correct": 1, "n_calls": 2},
    ...     {"correct": 1, "n_calls": 0},
    ...     {"correct": 0, "n_calls": 1},
    ...     {"correct": -1, "n_calls": 0},
    ... ] + [{"correct": 0, "n_calls": 0}] * 3 + [{"correct": 1, "n_calls": 0}]
    >>> shaped = shape_group(group)  # paper mode, alpha=0.5, beta=0.05, H=0.3, N=1
    >>> [round(r, 4) for r in shaped.rewards]
    [0.975, 1.0, 0.025, 0.0, 0.0, 0.0, 0.0, 1.0]
    >>> [round(c, 4) for c in shaped.curiosity], shaped.penalty[0]
    ([0.025, 0.0, 0.025, 0.0, 0.0, 0.0, 0.0, 0.0], -0.05)
    >>> shaped.stats.rapr, shaped.stats.accuracy
    (0.25, 0.375)

    In reference mode the unparsable answer keeps its -1, and the curiosity is
    (alpha / 4) × (H - RaPR) / RaPR = 0.125 × 0.05 / 0.25 = 0.025 here too:

    >>> [round(r, 4) for r in shape_group(group, mode="reference").rewards]
    [0.975, 1.0, 0.025, -1.0, 0.0, 0.0, 0.0, 1.0]
    """
    if mode not in MODES:
        raise ValueError(f"unknown reward mode {mode!r}; choose one of {MODES}")
    group = [as_view(o) for o in outcomes]
    if not group:
        return ShapedGroup([], [], [], GroupStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    rapr = sum(o.n_calls > 0 for o in group) / len(group)
    terms_of = _paper_terms if mode == "paper" else _reference_terms
    parts = [terms_of(o, rapr, alpha, beta, H, N) for o in group]
    rewards = [base + cur + pen for base, cur, pen in parts]
    curiosity = [cur for _, cur, _ in parts]
    penalty = [pen for _, _, pen in parts]
    n = len(group)
    stats = GroupStats(
        rapr=rapr,
        mean_calls=sum(o.n_calls for o in group) / n,
        curiosity_mean=math.fsum(curiosity) / n,
        penalty_mean=math.fsum(penalty) / n,
        accuracy=sum(o.correct > 0.5 for o in group) / n,
        reward_mean=math.fsum(rewards) / n,
    )
    return ShapedGroup(rewards, curiosity, penalty, stats)


def shaped_rewards(outcomes: Sequence[Any], **settings: Any) -> list[float]:
    """One shaped reward per rollout of one query, in order (``shape_group``'s settings)."""
    return shape_group(outcomes, **settings).rewards


def group_advantages(
    rewards: Sequence[float], group_size: int, *, std_norm: bool = False, eps: float = 1e-9
) -> list[float]:
    """Reward minus its group mean over consecutive groups of ``group_size``.

    The reference divides by nothing; ``std_norm`` gives standard GRPO (sample std, ddof=1, as
    torch's ``std`` in OpenRLHF/TRL, plus ``eps``). A group whose rewards are all equal gets
    exact zeros, never NaN and never float dust that would survive a zero-advantage filter.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    out: list[float] = []
    for start in range(0, len(rewards), group_size):
        group = [float(r) for r in rewards[start : start + group_size]]
        if not all(math.isfinite(r) for r in group):
            raise ValueError(f"non-finite reward in group starting at {start}: {group}")
        if max(group) == min(group):
            out.extend([0.0] * group_size)
            continue
        mean = math.fsum(group) / group_size
        centred = [r - mean for r in group]
        if std_norm:
            std = math.sqrt(math.fsum(c * c for c in centred) / (group_size - 1))
            centred = [c / (std + eps) for c in centred]
        out.extend(centred)
    return out
