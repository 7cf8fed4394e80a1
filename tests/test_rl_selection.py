"""Both engines train on the same selection of the same rewards (`pixelctl.rl.selection`).

The local engine's `LocalEngine.select` and the OpenRLHF hook's `replay_training_batch` run
here on identical rounds: the hook on real OpenRLHF `Experience` objects (split and rebatched
by OpenRLHF's own functions), the local engine with its real trajectory store. Only the
engines' surroundings are stand-ins (no model, no trainer): `select` reads nothing else.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from openrlhf.trainer.ppo_utils.experience import Experience

from pixelctl.config.schema import Recipe
from pixelctl.engines.local.loop import LocalEngine
from pixelctl.engines.local.store import TrajectoryStore
from pixelctl.engines.openrlhf.hook import replay_training_batch
from pixelctl.rl.rewards import group_advantages
from pixelctl.rl.schedule import plan_schedule
from pixelctl.rl.selection import SelectionSettings, select_training_set

N = 4  # samples per prompt
# three rounds of three groups: mixed, uniform, crumbs (uniform within 0.01), mixed, ...
ROUNDS = [
    [1, 0, 0, 0, 1, 1, 1, 1, 0.0, 0.0, 0.0, 0.01],
    [0, 0, 0, 0, 1, 1, 1, 1, 0.0, 0.0, 0.0, 0.0],  # no signal this round: all from the buffer
    [1, 1, 0, 1, 0, 1, 0, 0, 1.0, 1.0, 1.0, 0.99],
]


def tid(r: int, i: int) -> str:
    return f"r{r:05d}-{i:05d}"


def local_engine(**replay) -> SimpleNamespace:
    recipe = Recipe.model_validate(
        {
            "rl": {
                "engine": "local",
                "seed": 7,
                "rollout": {"n_samples": N, "prompts_per_round": 3},
                "optim": {"batch_size": 4},
                "replay": {"capacity": 64, "epsilon": 0.01, **replay},
            }
        }
    )
    settings = SelectionSettings.from_recipe(recipe.rl)
    return SimpleNamespace(
        recipe=recipe,
        store=TrajectoryStore(),
        selection=settings,
        replay=settings.make_replay(),
        plan=plan_schedule(recipe.rl, 3),  # one full round of 3 prompts per episode
    )


def experiences(r: int, rewards: list[float], advantages: list[float]) -> list[Experience]:
    """One round as OpenRLHF hands it to the hook: micro-batches of 2, out of prompt order."""
    singles = []
    for i, (reward, adv) in enumerate(zip(rewards, advantages, strict=True)):
        mask = torch.tensor([[0, 0, 1, 1, 1]])
        singles.append(
            Experience(
                sequences=torch.arange(6).unsqueeze(0),
                attention_mask=torch.ones(1, 6, dtype=torch.long),
                action_mask=mask,
                rewards=torch.tensor([reward]),
                advantages=torch.full((1, 5), adv) * mask,
                labels=[tid(r, i)],
                info={"reward": torch.tensor([reward])},
            )
        )
    pairs = []
    for start in reversed(range(0, len(singles), 2)):
        pair = Experience.concat_experiences(singles[start : start + 2], 0)
        pair.index = [start, start + 1]
        pairs.append(pair)
    return pairs


@pytest.mark.parametrize(
    "replay",
    [
        {"ssr": True, "zero_signal_filter": True},
        {"ssr": False, "zero_signal_filter": True},
        {"ssr": True, "zero_signal_filter": False},
    ],
)
def test_both_engines_select_the_same_training_set(replay):
    engine = local_engine(**replay)
    trainer = SimpleNamespace(
        args=SimpleNamespace(rollout=SimpleNamespace(n_samples_per_prompt=N)),
        _pixelctl_replay_settings=engine.selection,  # what job.py's env carries, parsed
    )
    for r, rewards in enumerate(ROUNDS):
        advantages = group_advantages(rewards, N)
        outcomes = [SimpleNamespace(messages=[{"role": "assistant", "content": "x"}])] * 12
        pairs, info = LocalEngine.select(engine, r, outcomes, rewards, advantages)
        batch = replay_training_batch(trainer, experiences(r, rewards, advantages))
        hook_ids = [label for e in batch for label in e.labels]
        assert [t for t, _ in pairs] == hook_ids
        replayed = [v.item() for e in batch for v in e.info["pixelctl/replayed"]]
        assert [float(not t.startswith(tid(r, 0)[:6])) for t, _ in pairs] == replayed
        assert info["replayed"] == sum(replayed)


def test_the_rule_round_by_round():
    """What the shared function picks, exactly (SSR and filter on, seed 7)."""
    settings = SelectionSettings(capacity=64, epsilon=0.01, seed=7)
    replay = settings.make_replay()
    picks = []
    for r, rewards in enumerate(ROUNDS):
        ids = [tid(r, i) for i in range(12)]
        sel = select_training_set(
            rewards,
            group_advantages(rewards, N),
            ids,
            group_size=N,
            round_index=r,
            settings=settings,
            replay=replay,
        )
        picks.append(sel)
    first = picks[0]
    # round 0: the crumbs group (mean |r - mean| = 0.00375) is filtered with the uniform one;
    # the 4 samples of the mixed group, then 8 repeats of them (empty buffer)
    assert first.uniform_groups == 2 and first.n_nonzero == 4
    assert first.payloads[:4] == [tid(0, i) for i in range(4)]
    assert set(first.payloads) == {tid(0, i) for i in range(4)}
    assert first.n_from_buffer == 0 and first.buffer_size == 4
    # round 1: no signal at all; every pick comes from round 0's buffer
    assert picks[1].n_from_buffer == 12 and picks[1].replayed == [True] * 12
    assert {p[:6] for p in picks[1].payloads} == {"r00000"}
    # round 2: two mixed groups (8 non-zero), the rest from the buffer
    assert picks[2].n_nonzero == 8 and picks[2].n_from_buffer == 4
    assert picks[2].payloads[:8] == [tid(2, i) for i in range(8)]


def test_refill_without_ssr_uses_seed_plus_round():
    settings = SelectionSettings(ssr=False, seed=7)
    rewards = [1, 0, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1]  # mixed, uniform, mixed
    ids = list(range(12))
    sel = [
        select_training_set(
            rewards,
            group_advantages(rewards, N),
            ids,
            group_size=N,
            round_index=r,
            settings=settings,
        )
        for r in range(8)
    ]
    # 3 groups, 2 kept: both once, then one of them again, chosen by the seed of the round
    extra = {s.payloads[8] for s in sel}
    assert extra == {0, 8}
    assert all(s.n_refilled_groups == 1 and s.uniform_groups == 1 for s in sel)
    assert all(sorted(s.payloads[:8]) == [0, 1, 2, 3, 8, 9, 10, 11] for s in sel)


def test_settings_from_the_job_env_must_be_complete():
    with pytest.raises(ValueError, match="epsilon"):
        SelectionSettings.from_mapping(
            {"ssr": True, "zero_signal_filter": True, "capacity": 8, "seed": 1}
        )
