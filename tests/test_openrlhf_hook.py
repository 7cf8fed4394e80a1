"""The functions the OpenRLHF patches call, on real `Experience` objects (CPU, no Ray)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from openrlhf.trainer.ppo_utils.experience import (  # in the CPU venv (--no-deps)
    Experience,
    remove_padding_in_sequences,
    split_experience_batch,
)

from pixelctl.engines.openrlhf import hook
from pixelctl.engines.openrlhf.hook import (
    ReplaySettings,
    replay_training_batch,
    shape_group_rewards,
)

PAPER = {"mode": "paper", "alpha": 0.5, "beta": 0.05, "H": 0.3, "N": 1}


def rollout(
    correct: float, n_calls: int = 0, *, video: bool = False, label: str = ""
) -> Experience:
    """One sample as `_process_response_into_experience` builds it from our agent's output."""
    info = {
        "reward": torch.tensor([max(correct, 0.0)]),
        "score": torch.tensor([float(correct > 0.5)]),
        "pixelctl/correct": torch.tensor([correct]),
        "pixelctl/n_calls": torch.tensor([float(n_calls)]),
        "pixelctl/is_video": torch.tensor([float(video)]),
        "pixelctl/final_error": torch.tensor([0.0]),
    }
    return Experience(
        sequences=torch.arange(6).unsqueeze(0),
        attention_mask=torch.ones(1, 6, dtype=torch.long),
        action_mask=torch.tensor([[0, 0, 1, 1, 1]]),
        rewards=torch.tensor([max(correct, 0.0)]),
        scores=torch.tensor([float(correct > 0.5)]),
        labels=[label],
        info=info,
    )


def test_paper_worked_example_one_explorer_in_eight():
    group = [rollout(1.0, n_calls=1)] + [rollout(0.0) for _ in range(7)]
    stats = shape_group_rewards(group, PAPER)
    # RaPR = 1/8: curiosity 0.5 * (0.3 - 0.125) = 0.0875; one call is within N = 1: no penalty
    assert group[0].rewards.item() == pytest.approx(1.0875)
    assert group[0].info["reward"].item() == pytest.approx(1.0875)
    assert [e.rewards.item() for e in group[1:]] == [0.0] * 7
    assert group[0].info["pixelctl/curiosity"].item() == pytest.approx(0.0875)
    assert stats["rapr"] == 0.125 and group[3].info["pixelctl/rapr"].item() == 0.125
    assert [e.scores.item() for e in group] == [1.0] + [0.0] * 7  # scores stay accuracy


def test_reference_video_and_penalty():
    group = [rollout(1.0, n_calls=3, video=True)] + [rollout(1.0) for _ in range(7)]
    shape_group_rewards(group, {**PAPER, "mode": "reference"})
    # (1/6) * (0.3 - 1/8) / (1/8) = 0.2333; penalty -0.05 * (3 - 1) = -0.1
    assert group[0].rewards.item() == pytest.approx(1.0 + 0.23333333 - 0.1, abs=1e-6)
    assert group[0].info["pixelctl/penalty"].item() == pytest.approx(-0.1)
    assert group[1].rewards.item() == 1.0


def test_shaping_is_a_no_op_without_settings_or_foreign_samples(monkeypatch):
    monkeypatch.delenv(hook.REWARD_ENV, raising=False)
    group = [rollout(1.0, n_calls=1), rollout(0.0)]
    assert shape_group_rewards(group) is None
    assert group[0].rewards.item() == 1.0
    foreign = [rollout(1.0)]
    del foreign[0].info["pixelctl/correct"]
    assert shape_group_rewards(foreign, PAPER) is None


# ---------------------------------------------------------------------------- replay
def with_advantages(rewards: list[float], group: str, n: int) -> list[Experience]:
    mean = sum(rewards) / n
    out = []
    for i, r in enumerate(rewards):
        e = rollout(r, label=f"{group}{i}")
        e.info["pixelctl/rapr"] = torch.tensor([0.0])  # shaped by the group hook (patch 0001)
        e.advantages = torch.full((1, 5), r - mean) * e.action_mask
        out.append(e)
    return out


def trainer(**settings) -> SimpleNamespace:
    return SimpleNamespace(
        args=SimpleNamespace(rollout=SimpleNamespace(n_samples_per_prompt=4)),
        _pixelctl_replay_settings=ReplaySettings(**settings),
    )


def indexed(samples: list[Experience]) -> list[Experience]:
    for i, s in enumerate(samples):
        s.index = [i]
    return samples


def labels(batch: list[Experience]) -> list[str]:
    return [label for e in batch for label in e.labels]


def test_ssr_keeps_the_sample_count_and_only_trains_on_signal():
    t = trainer(ssr=True, zero_signal_filter=True, capacity=64, epsilon=0.01, seed=0)
    round1 = indexed(with_advantages([1, 0, 0, 0], "A", 4) + with_advantages([1, 1, 1, 1], "B", 4))
    batch = replay_training_batch(t, round1)
    assert len(labels(batch)) == 8
    assert set(labels(batch)) == {"A0", "A1", "A2", "A3"}  # every non-zero sample, then repeats
    assert t._pixelctl_ssr.last.n_nonzero == 4
    # next round has no signal: the whole batch comes from the buffer, marked as replayed
    round2 = indexed(with_advantages([0, 0, 0, 0], "C", 4) + with_advantages([1, 1, 1, 1], "D", 4))
    batch = replay_training_batch(t, round2)
    assert {label[0] for label in labels(batch)} == {"A"}
    assert [v.item() for e in batch for v in e.info["pixelctl/replayed"]] == [1.0] * 8


def test_uniform_within_tolerance_counts_as_no_signal():
    t = trainer(ssr=True, zero_signal_filter=True, capacity=64, seed=0)
    crumbs = with_advantages([1.0, 1.0, 1.0, 0.99], "P", 4)  # mean |r - mean| = 0.00375 < 0.01
    batch = replay_training_batch(t, indexed(crumbs + with_advantages([1, 0, 1, 0], "Q", 4)))
    assert {label[0] for label in labels(batch)} == {"Q"}


def test_zero_signal_filter_alone_repeats_the_kept_groups():
    t = trainer(ssr=False, zero_signal_filter=True, seed=0)
    samples = indexed(with_advantages([1, 1, 1, 1], "U", 4) + with_advantages([0, 1, 0, 0], "K", 4))
    batch = replay_training_batch(t, samples)
    assert labels(batch) == ["K0", "K1", "K2", "K3"] * 2


def test_micro_batches_are_rebuilt_in_prompt_order():
    t = trainer(ssr=False, zero_signal_filter=True, seed=0)
    samples = with_advantages([0, 1, 0, 0], "K", 4) + with_advantages([1, 1, 1, 1], "U", 4)
    pairs = [Experience.concat_experiences(samples[i : i + 2], 0) for i in (4, 6, 0, 2)]
    for e, idx in zip(pairs, ([4, 5], [6, 7], [0, 1], [2, 3]), strict=True):
        e.index = idx  # OpenRLHF's original positions, as split_rollout_samples sets them
    batch = replay_training_batch(t, pairs)
    assert [len(e.sequences) for e in batch] == [2, 2, 2, 2]
    assert labels(batch) == ["K0", "K1", "K2", "K3"] * 2
    # what the actor's replay buffer does with them next
    items = remove_padding_in_sequences(split_experience_batch(batch[0]))
    assert [i.info["pixelctl/replayed"].item() for i in items] == [0.0, 0.0]
    assert items[1].advantages.tolist() == pytest.approx([0.0, 0.0, 0.75, 0.75, 0.75])


def test_replay_is_a_no_op_without_settings(monkeypatch):
    monkeypatch.delenv(hook.REPLAY_ENV, raising=False)
    t = SimpleNamespace(args=SimpleNamespace(rollout=SimpleNamespace(n_samples_per_prompt=4)))
    samples = indexed(with_advantages([1, 0, 0, 0], "A", 4))
    assert replay_training_batch(t, samples) is samples


# ---------------------------------------------------------------------------- the engine's duties
def test_round_one_without_the_group_hook_stops_naming_the_node():
    t = trainer(ssr=True, zero_signal_filter=True, capacity=64, seed=0)
    unshaped = indexed(with_advantages([1, 0, 0, 0], "A", 4))
    for e in unshaped:
        del e.info["pixelctl/rapr"]
    from pixelctl.engines.openrlhf.patchcheck import PatchesMissing

    with pytest.raises(PatchesMissing) as err:
        replay_training_batch(t, unshaped)
    message = str(err.value)
    assert "on node " in message and "shape_group_rewards" in message
    assert "make apply-patches" in message


def test_failed_samples_get_zero_advantage_and_never_enter_the_buffer():
    t = trainer(ssr=True, zero_signal_filter=True, capacity=64, epsilon=0.01, seed=0)
    group = with_advantages([1, 0, 0, 0], "F", 4)
    group[1].info["pixelctl/failed"] = torch.tensor([1.0])
    group[1].advantages = torch.full((1, 5), -0.25) * group[1].action_mask
    for e in group:
        e.info.setdefault("pixelctl/failed", torch.tensor([0.0]))
    batch = replay_training_batch(t, indexed(group))
    assert "F1" not in labels(batch)  # zero advantage: no signal, not drawn, not buffered
    assert "F1" not in [s.labels[0] for s, _ in t._pixelctl_ssr.buffer]
    assert hook.zero_failed([group[1]]) == 1 and group[1].advantages.abs().sum().item() == 0.0


def test_buffer_age_cap_evicts_samples_of_older_rounds(monkeypatch):
    monkeypatch.setenv(hook.REPLAY_ENV, '{"max_age_rounds": 1}')
    t = trainer(ssr=True, zero_signal_filter=True, capacity=64, epsilon=0.01, seed=0)
    replay_training_batch(t, indexed(with_advantages([1, 0, 0, 0], "A", 4)))
    assert {s.labels[0][0] for s, _ in t._pixelctl_ssr.buffer} == {"A"}
    replay_training_batch(t, indexed(with_advantages([0, 1, 0, 0], "B", 4)))
    # after round 2 only round-2 samples stay: round 3 replays nothing older than one round
    assert {s.labels[0][0] for s, _ in t._pixelctl_ssr.buffer} == {"B"}
    batch = replay_training_batch(t, indexed(with_advantages([0, 0, 0, 0], "C", 4)))
    assert {label[0] for label in labels(batch)} == {"B"}


def test_buffer_memory_cap_keeps_the_newest_samples_that_fit(monkeypatch):
    t = trainer(ssr=True, zero_signal_filter=True, capacity=64, epsilon=0.01, seed=0)
    samples = with_advantages([1, 0, 0, 0], "M", 4)
    for e in samples:  # pixel tensors as the processor makes them: float32 rows of 1,176
        e.mm_train_inputs = [{"pixel_values": torch.zeros(16, 1176), "image_grid_thw": None}]
    one = hook.sample_bytes(samples[0])
    assert one >= 16 * 1176 * 4
    monkeypatch.setenv(hook.REPLAY_ENV, json.dumps({"max_memory_gb": 2.5 * one / 1e9}))
    replay_training_batch(t, indexed(samples))
    assert [s.labels[0] for s, _ in t._pixelctl_ssr.buffer] == ["M2", "M3"]


def test_ssr_buffer_is_saved_with_the_checkpoint_and_restored_on_resume(tmp_path, monkeypatch):
    monkeypatch.setenv(hook.SCHEDULE_ENV, json.dumps({"save_every_rounds": 2, "ranks": 1}))
    ckpt = SimpleNamespace(path=str(tmp_path), load_enable=False)
    t = trainer(ssr=True, zero_signal_filter=True, capacity=64, epsilon=0.01, seed=0)
    t.args.ckpt = ckpt
    replay_training_batch(t, indexed(with_advantages([1, 0, 0, 0], "A", 4)), global_step=0)
    assert not (tmp_path / "pixelctl_replay.pt").exists()  # round 1: no checkpoint
    replay_training_batch(t, indexed(with_advantages([0, 1, 0, 0], "B", 4)), global_step=1)
    assert (tmp_path / "pixelctl_replay.pt").exists()  # OpenRLHF saves global_step2 now
    saved = [s.labels[0] for s, _ in t._pixelctl_ssr.buffer]
    fresh = trainer(ssr=True, zero_signal_filter=True, capacity=64, epsilon=0.01, seed=0)
    fresh.args.ckpt = SimpleNamespace(path=str(tmp_path), load_enable=True)
    fresh._pixelctl_ssr = fresh._pixelctl_replay_settings.make_replay()
    assert hook.load_replay_state(fresh, 2)
    assert [s.labels[0] for s, _ in fresh._pixelctl_ssr.buffer] == saved
    assert fresh._pixelctl_round == 2
    assert not hook.load_replay_state(fresh, 3)  # another checkpoint's step: not this buffer
