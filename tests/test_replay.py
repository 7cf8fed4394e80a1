"""Zero-signal filtering and Selective Sample Replay (docs/method.md §5)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from pixelctl.rl.selection import SelectiveSampleReplay, filter_zero_signal, is_uniform

# chi-square critical values at p = 0.001 (df = 1, 3)
CHI2_999 = {1: 10.828, 3: 16.266}


def chi_square(counts: Counter, probs: dict) -> float:
    total = sum(counts.values())
    return sum((counts[k] - total * p) ** 2 / (total * p) for k, p in probs.items())


def test_is_uniform():
    assert is_uniform([1.0, 1.0, 1.0])
    assert is_uniform([0.0] * 7 + [0.04])  # mean |r - mean| = 0.00875 < 0.01
    assert not is_uniform([0.0] * 7 + [0.04], tol=0.0)
    assert not is_uniform([0.0] * 7 + [0.05])  # 0.0109
    assert not is_uniform([0.0] * 6 + [0.05, 0.05])  # 0.01875
    assert not is_uniform([1.0, 0.0])


def test_filter_drops_uniform_groups_and_refills_by_repeating():
    rewards = [1, 1, 0, 1, 0, 0, 1, 0.5]  # groups of 2: uniform, mixed, uniform, mixed
    result = filter_zero_signal(rewards, 2)
    assert result.uniform == [0, 2]
    assert result.dropped == [0, 2]
    assert result.indices == [1, 3, 1, 3]
    assert result.n_refilled == 2


def test_filter_refill_counts_with_remainder():
    # 7 groups of 4, two mixed: 7 = 3 * 2 + 1, so one kept group appears 4 times, one 3 times
    uniform, mixed = [0.0] * 4, [1.0, 0.0, 0.0, 0.0]
    rewards = uniform * 2 + mixed + uniform * 2 + mixed + uniform
    first = filter_zero_signal(rewards, 4)
    assert first.indices == [2, 5, 2, 5, 2, 5, 2]
    counts = Counter(filter_zero_signal(rewards, 4, seed=3).indices)
    assert sorted(counts.values()) == [3, 4]
    assert set(counts) == {2, 5}
    assert filter_zero_signal(rewards, 4, seed=3) == filter_zero_signal(rewards, 4, seed=3)
    picked = {filter_zero_signal(rewards, 4, seed=s).indices.count(5) for s in range(20)}
    assert picked == {3, 4}  # the seed decides which group gets the extra copy


def test_filter_leaves_all_uniform_and_all_mixed_batches_alone():
    all_uniform = filter_zero_signal([1, 1, 0, 0, 0.3, 0.3], 2)
    assert all_uniform.indices == [0, 1, 2]
    assert all_uniform.uniform == [0, 1, 2]
    assert all_uniform.dropped == []
    assert all_uniform.n_refilled == 0
    all_mixed = filter_zero_signal([1, 0, 0, 1], 2)
    assert all_mixed.indices == [0, 1]
    assert all_mixed.dropped == []


def test_filter_rejects_ragged_batches():
    with pytest.raises(ValueError):
        filter_zero_signal([1, 0, 1], 2)


# --- SSR ----------------------------------------------------------------------------------------


def test_ssr_draws_current_samples_proportional_to_abs_advantage():
    samples = ["a", "b", "c", "d", "zero1", "zero2"]
    advantages = [0.1, -0.2, 0.3, -0.4, 0.0, 0.0]
    ssr = SelectiveSampleReplay(capacity=0, seed=1234)
    counts = Counter()
    for _ in range(1000):
        counts.update(ssr.select(samples, advantages, 4))
    assert "zero1" not in counts and "zero2" not in counts
    expected = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}
    assert chi_square(counts, expected) < CHI2_999[3]
    # and it is not uniform: a uniform draw would fail the same test
    assert chi_square(counts, dict.fromkeys(expected, 0.25)) > CHI2_999[3]


def test_ssr_fills_from_earlier_rounds_proportional_to_abs_advantage_plus_eps():
    ssr = SelectiveSampleReplay(capacity=10, eps=0.1, seed=7)
    ssr.select(["old_big", "old_small", "z"], [0.5, -0.1, 0.0], 2)  # fills the buffer
    assert [s for s, _ in ssr.buffer] == ["old_big", "old_small"]
    snapshot = list(ssr.buffer)
    counts = Counter()
    for _ in range(2000):
        ssr.buffer = list(snapshot)  # the same earlier round every time
        batch = ssr.select(["new", "z1", "z2"], [0.2, 0.0, 0.0], 2)
        assert batch[0] == "new"  # every current non-zero sample is in
        counts[batch[1]] += 1
    assert ssr.last.n_from_current == 1 and ssr.last.n_from_buffer == 1
    # weights |A| + eps: 0.6 and 0.2
    assert chi_square(counts, {"old_big": 0.75, "old_small": 0.25}) < CHI2_999[1]


def test_ssr_first_round_repeats_current_samples():
    ssr = SelectiveSampleReplay(seed=0)
    batch = ssr.select(["a", "b", "z"], [1.0, -1.0, 0.0], 5)
    assert len(batch) == 5
    assert batch[:2] == ["a", "b"]
    assert set(batch) == {"a", "b"}
    assert (ssr.last.n_from_current, ssr.last.n_from_buffer) == (5, 0)


def test_ssr_buffer_is_bounded_fifo_of_nonzero_samples():
    ssr = SelectiveSampleReplay(capacity=3, seed=0)
    for round_ in range(3):
        ssr.select([f"{round_}a", f"{round_}b", f"{round_}z"], [0.5, -0.5, 0.0], 2)
    assert [s for s, _ in ssr.buffer] == ["1b", "2a", "2b"]
    assert ssr.last.buffer_size == 3


def test_ssr_without_current_signal_uses_only_the_buffer():
    ssr = SelectiveSampleReplay(seed=0)
    ssr.select(["a", "b"], [1.0, 0.0], 1)
    batch = ssr.select(["z1", "z2"], [0.0, 0.0], 3)
    assert batch == ["a", "a", "a"]
    assert ssr.last.n_from_buffer == 3


def test_ssr_with_no_signal_anywhere_returns_the_batch_unchanged():
    ssr = SelectiveSampleReplay(seed=0)
    assert ssr.select(["z1", "z2"], [0.0, 0.0], 2) == ["z1", "z2"]
    assert ssr.buffer == []


def test_ssr_state_round_trip_reproduces_the_same_batches():
    def rounds(ssr, start):
        out = []
        for r in range(start, start + 3):
            samples = [f"{r}-{i}" for i in range(6)]
            advantages = [0.0, 0.3, -0.1, 0.0, 0.0, 0.2 * (r % 2)]
            out.append(ssr.select(samples, advantages, 4))
        return out

    original = SelectiveSampleReplay(capacity=5, seed=42)
    rounds(original, 0)
    state = json.loads(json.dumps(original.state_dict()))  # survives a JSON checkpoint
    expected = rounds(original, 3)
    resumed = SelectiveSampleReplay(capacity=1, seed=0)
    resumed.load_state_dict(state)
    assert rounds(resumed, 3) == expected
    assert resumed.capacity == 5


def test_ssr_rejects_mismatched_inputs():
    ssr = SelectiveSampleReplay()
    with pytest.raises(ValueError):
        ssr.select(["a"], [1.0, 2.0], 1)
    with pytest.raises(ValueError):
        ssr.select(["a"], [1.0], 0)
