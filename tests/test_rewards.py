"""The curiosity reward (paper and reference modes) and group advantages (docs/method.md)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixelctl.rl import rewards as rewards_module
from pixelctl.rl.rewards import (
    RolloutView,
    group_advantages,
    shape_group,
    shaped_rewards,
    view_rollout,
)

TIGHT = 1e-12


def group(n_tool_users: int, n: int = 8, *, video: bool = False, correct: float = 0.0):
    """n rollouts, the first ``n_tool_users`` with exactly one (unpenalised) tool call."""
    return [
        {"correct": correct, "n_calls": 1 if i < n_tool_users else 0, "is_video": video}
        for i in range(n)
    ]


# worked values of docs/method.md, n = 8: (tool users, paper, reference image, reference video)
WORKED = [
    (1, 0.0875, 0.175, 0.7 / 3),
    (2, 0.025, 0.025, 0.1 / 3),
    (3, 0.0, 0.0, 0.0),
    (5, 0.0, 0.0, 0.0),
]


@pytest.mark.parametrize(("users", "paper", "ref_image", "ref_video"), WORKED)
def test_spec_worked_values(users, paper, ref_image, ref_video):
    for mode, video, expected in [
        ("paper", False, paper),
        ("paper", True, paper),  # the paper does not distinguish videos
        ("reference", False, ref_image),
        ("reference", True, ref_video),
    ]:
        shaped = shape_group(group(users, video=video), mode=mode)
        assert shaped.curiosity[:users] == pytest.approx([expected] * users, abs=TIGHT)
        assert shaped.curiosity[users:] == [0.0] * (8 - users)
        # wrong answers, one call each: the reward is exactly the curiosity term
        assert shaped.rewards == pytest.approx(shaped.curiosity, abs=TIGHT)


def test_worked_values_rounded_as_in_spec():
    ref_video = shape_group(group(1, video=True), mode="reference").curiosity[0]
    assert round(ref_video, 3) == 0.233
    assert round(shape_group(group(2, video=True), mode="reference").curiosity[0], 3) == 0.033


def test_all_correct_without_tools_is_exactly_one():
    for mode in ("paper", "reference"):
        assert shaped_rewards(group(0, correct=1.0), mode=mode) == [1.0] * 8


def test_all_wrong_without_tools_is_zero():
    for mode in ("paper", "reference"):
        assert shaped_rewards(group(0), mode=mode) == [0.0] * 8


MIXED = [
    {"correct": 1, "n_calls": 1},
    {"correct": 1, "n_calls": 0},
    {"correct": 0, "n_calls": 3},
    {"correct": 0, "n_calls": 0},
    {"correct": 1, "n_calls": 0},
    {"correct": 0, "n_calls": 0},
    {"correct": 0, "n_calls": 0},
    {"correct": 1, "n_calls": 0},
]


def test_mixed_group_paper():
    # RaPR = 2/8: curiosity 0.5 * 0.05 = 0.025; three calls: 0.05 * (1 - 3) = -0.1
    expected = [1.025, 1.0, -0.075, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert shaped_rewards(MIXED) == pytest.approx(expected, abs=TIGHT)


def test_mixed_group_reference_video_differs_from_image():
    image = shaped_rewards(MIXED, mode="reference")
    video = shaped_rewards([{**o, "is_video": True} for o in MIXED], mode="reference")
    assert image == pytest.approx([1.025, 1.0, -0.075, 0.0, 1.0, 0.0, 0.0, 1.0], abs=TIGHT)
    bonus = 0.05 / 0.25 / 6
    assert video == pytest.approx([1 + bonus, 1.0, bonus - 0.1, 0.0, 1.0, 0.0, 0.0, 1.0], abs=TIGHT)


def test_parse_failures():
    outcomes = [
        {"correct": -1, "n_calls": 0},
        {"correct": 1, "n_calls": 0},
        {"correct": -1, "n_calls": 2},
        {"correct": 0, "n_calls": 0},
    ]
    # RaPR = 1/4: paper curiosity 0.5 * 0.05; reference image 0.125 * 0.05 / 0.25
    assert shaped_rewards(outcomes) == pytest.approx([0.0, 1.0, 0.025 - 0.05, 0.0], abs=TIGHT)
    assert shaped_rewards(outcomes, mode="reference") == pytest.approx(
        [-1.0, 1.0, -1.0 + 0.025 - 0.05, 0.0], abs=TIGHT
    )


def test_final_error_zeroes_only_its_own_correct_rollout_in_reference():
    outcomes = [{"correct": 1, "n_calls": 1} for _ in range(8)]
    outcomes[5] = {"correct": 1, "n_calls": 2, "final_error": True}
    outcomes[6] = {"correct": 0, "n_calls": 1, "final_error": True}
    ref = shaped_rewards(outcomes, mode="reference")
    # RaPR = 1: no curiosity; the flagged correct rollout loses its accuracy, keeps its penalty
    assert ref == pytest.approx([1.0] * 5 + [-0.05, 0.0, 1.0], abs=TIGHT)
    # the paper has no such rule
    assert shaped_rewards(outcomes) == pytest.approx([1.0] * 5 + [0.95, 0.0, 1.0], abs=TIGHT)


def test_used_pixel_reasoning_counts_failed_attempts():
    """A rollout whose only call failed still used pixel-space reasoning (documented choice)."""
    failed = group(0)
    failed[0] = {"correct": 0, "n_calls": 1, "final_error": True}
    assert shape_group(failed).stats.rapr == 1 / 8
    assert shaped_rewards(failed)[0] == pytest.approx(0.0875, abs=TIGHT)


def test_every_rollout_uses_tools():
    outcomes = [{"correct": 1, "n_calls": n} for n in (1, 2, 4, 5)]
    for mode in ("paper", "reference"):
        assert shaped_rewards(outcomes, mode=mode) == pytest.approx(
            [1.0, 0.95, 0.85, 0.8], abs=TIGHT
        )


def test_accepts_mappings_objects_and_views():
    as_dicts = shaped_rewards(MIXED[:4])
    as_objects = shaped_rewards([SimpleNamespace(**o) for o in MIXED[:4]])
    as_views = shaped_rewards([RolloutView(**o) for o in MIXED[:4]])
    assert as_dicts == as_objects == as_views


def test_custom_hyperparameters():
    # H = 0.5, alpha = 1, beta = 0.1, N = 2: one of four uses 3 calls
    outcomes = [{"correct": 0, "n_calls": 3}] + [{"correct": 0, "n_calls": 0}] * 3
    rewards = shaped_rewards(outcomes, alpha=1.0, beta=0.1, H=0.5, N=2)
    assert rewards == pytest.approx([0.25 - 0.1, 0.0, 0.0, 0.0], abs=TIGHT)


def test_group_stats():
    stats = shape_group(MIXED).stats
    assert stats.rapr == 0.25
    assert stats.mean_calls == 0.5
    assert stats.accuracy == 0.5
    assert stats.curiosity_mean == pytest.approx(0.05 / 8, abs=TIGHT)
    assert stats.penalty_mean == pytest.approx(-0.1 / 8, abs=TIGHT)
    assert stats.reward_mean == pytest.approx((4 + 0.05 - 0.1) / 8, abs=TIGHT)


def test_empty_group():
    assert shaped_rewards([]) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"n_calls": 1},
        {"correct": 2.0},
        {"correct": float("nan")},
        {"correct": 1, "n_calls": -1},
        {"correct": 1, "n_calls": 1.5},
    ],
)
def test_invalid_outcomes_raise(bad):
    with pytest.raises(ValueError):
        shaped_rewards([bad])


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match="unknown reward mode"):
        shaped_rewards(MIXED, mode="papers")


# --- properties -------------------------------------------------------------------------------

outcome_st = st.fixed_dictionaries(
    {
        "correct": st.sampled_from([-1.0, 0.0, 1.0]),
        "n_calls": st.integers(0, 6),
        "is_video": st.booleans(),
        "final_error": st.booleans(),
    }
)
groups_st = st.lists(outcome_st, min_size=1, max_size=16)
modes_st = st.sampled_from(["paper", "reference"])


@given(groups_st, st.randoms(use_true_random=False), modes_st)
def test_rewards_are_permutation_invariant(outcomes, rnd, mode):
    order = list(range(len(outcomes)))
    rnd.shuffle(order)
    rewards = shaped_rewards(outcomes, mode=mode)
    permuted = shaped_rewards([outcomes[i] for i in order], mode=mode)
    assert permuted == pytest.approx([rewards[i] for i in order], abs=TIGHT)


@given(groups_st, st.floats(0.0, 2.0), st.floats(0.0, 1.0))
def test_paper_curiosity_never_exceeds_alpha_times_h(outcomes, alpha, H):
    curiosity = shape_group(outcomes, alpha=alpha, H=H).curiosity
    assert all(0.0 <= c <= alpha * H + TIGHT for c in curiosity)


@given(st.lists(outcome_st, min_size=1, max_size=8))
def test_reference_curiosity_stays_under_the_codes_cap_for_groups_up_to_8(outcomes):
    # the code says "the maximum curiosity is 0.25"; that holds for n <= 8 only
    assert all(0.0 <= c <= 0.25 for c in shape_group(outcomes, mode="reference").curiosity)


def test_reference_curiosity_exceeds_its_cap_for_large_groups():
    """Documented, not fixed: reference-mode curiosity grows with n (1/RaPR)."""
    assert shape_group(group(1, n=16), mode="reference").curiosity[0] == pytest.approx(
        0.125 * (0.3 - 1 / 16) * 16, abs=TIGHT
    )


@given(groups_st, modes_st)
def test_penalty_is_zero_for_one_call_or_none(outcomes, mode):
    penalty = shape_group(outcomes, mode=mode).penalty
    for o, p in zip(outcomes, penalty, strict=True):
        if o["n_calls"] <= 1:
            assert p == 0.0
        else:
            assert p == pytest.approx(-0.05 * (o["n_calls"] - 1), abs=TIGHT)


# --- advantages -------------------------------------------------------------------------------


def test_advantages_mean_centred_per_group():
    adv = group_advantages([1.0, 0.0, 0.0, 0.0, 0.5, 0.5, 1.5, -0.5], 4)
    assert adv == pytest.approx([0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 1.0, -1.0], abs=TIGHT)


def test_advantages_with_std_norm():
    # mean 0.25, sample std sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5
    adv = group_advantages([1.0, 0.0, 0.0, 0.0], 4, std_norm=True)
    assert adv == pytest.approx([1.5, -0.5, -0.5, -0.5], abs=1e-8)
    no_std = group_advantages([1.0, 0.0, 0.0, 0.0], 4)
    assert no_std != pytest.approx(adv)


@pytest.mark.parametrize("std_norm", [False, True])
def test_zero_variance_group_gives_exact_zeros(std_norm):
    rewards = [0.1 + 0.2] * 8 + [0.1] * 3 + [0.7] * 5
    adv = group_advantages(rewards, 8, std_norm=std_norm)
    assert adv[:8] == [0.0] * 8
    assert not any(math.isnan(a) for a in adv)
    assert group_advantages([1.0], 1, std_norm=std_norm) == [0.0]


def test_advantages_reject_bad_input():
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages([1.0, 0.0], 3)
    with pytest.raises(ValueError, match="non-finite"):
        group_advantages([1.0, float("nan")], 2)
    with pytest.raises(ValueError):
        group_advantages([1.0], 0)


@given(st.lists(st.floats(-2, 2), min_size=1, max_size=8), st.integers(1, 4))
def test_advantages_sum_to_zero_per_group(values, repeats):
    rewards = values * repeats
    adv = group_advantages(rewards, len(values))
    for start in range(0, len(rewards), len(values)):
        assert math.fsum(adv[start : start + len(values)]) == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------------- the rollout view
def rollout_with(calls, *, final_error=False, video=False):
    """What pixelctl.agent.Outcome / Rollout expose to the view (CallRecord-like calls): each
    call is (executed, name), name None for a call that did not parse."""
    return SimpleNamespace(
        calls=[SimpleNamespace(executed=e, name=n) for e, n in calls],
        final_error=final_error,
        query=SimpleNamespace(is_video=video),
    )


def test_view_counts_attempts_or_executed_calls():
    crop = "crop_image_normalized"
    # refused by a limit, ran, and malformed (the executor ran it: it counts toward its limit)
    r = rollout_with([(False, crop), (True, crop), (True, None)], final_error=True, video=True)
    attempts = view_rollout(r, 1.0)
    assert attempts == RolloutView(1.0, 3, True, True, n_attempts=3, n_operations=1)
    assert view_rollout(r, 1.0, count="executed").n_calls == 1
    only_malformed = [rollout_with([(True, None)])] + [rollout_with([])] * 7
    by_attempts = shape_group([view_rollout(o, 0.0) for o in only_malformed])
    by_executed = shape_group([view_rollout(o, 0.0, count="executed") for o in only_malformed])
    assert by_attempts.stats.rapr == 1 / 8 and by_attempts.rewards[0] == pytest.approx(0.0875)
    assert by_executed.stats.rapr == 0.0 and by_executed.rewards == [0.0] * 8
    with pytest.raises(ValueError, match=r"rl\.reward\.count"):
        view_rollout(r, 1.0, count="calls")  # type: ignore[arg-type]


def test_view_reads_a_real_agent_outcome():
    from pixelctl.agent import CallRecord, Outcome, Query

    call = CallRecord(0, None, None, executed=False, ok=False, error="malformed", n_images=0)
    query = Query(qid="q", question="?", answer="a", images=("v.mp4",), is_video=True)
    outcome = Outcome(query, [], [call], ["x"], "answer")
    view = view_rollout(outcome, 0.0)
    assert (view.n_calls, view.n_operations, view.is_video) == (1, 0, True)
    assert view.final_error == outcome.final_error
    # the executor runs a malformed call (it counts toward the operation limit, as in the
    # reference), but `executed` does not count it as pixel-space reasoning
    ran = CallRecord(0, None, None, executed=True, ok=False, error="malformed", n_images=0)
    malformed = Outcome(query, [], [ran], ["x"], "answer")
    assert malformed.n_operations == 1
    assert view_rollout(malformed, 0.0, count="executed").n_calls == 0
    assert view_rollout(malformed, 0.0).n_calls == 1


def test_view_logs_round_trip_and_refuse_missing_fields():
    torch = pytest.importorskip("torch")
    view = RolloutView(-1.0, 2, False, True, n_attempts=2, n_operations=1)
    logs = {k: torch.tensor([v]) for k, v in view.to_logs("p/").items()}
    assert RolloutView.from_logs(logs, "p/") == view
    del logs["p/final_error"]
    with pytest.raises(KeyError, match="p/final_error"):
        RolloutView.from_logs(logs, "p/")


def test_shape_group_docstring_example():
    import doctest

    assert doctest.testmod(rewards_module).failed == 0
