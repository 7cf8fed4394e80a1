"""One round/step arithmetic (`pixelctl.rl.schedule`), checked against OpenRLHF and transformers.

The round count is driven through OpenRLHF 0.11.2's own `SamplesGenerator.generate_samples`
(installed file, loaded with vLLM and Ray replaced by stubs: they only dispatch generation,
which does not decide how many prompts a round takes), inside a copy of `PPOTrainer.fit`'s
episode loop. The learning-rate factor is compared with transformers' `get_scheduler`, the
function OpenRLHF's DeepSpeed strategy calls.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from pixelctl.cli.derived import derive
from pixelctl.config import load_recipe
from pixelctl.config.schema import Recipe
from pixelctl.rl.schedule import plan_schedule

ROOT = Path(__file__).resolve().parents[1]


def rl(**kw):
    ro = {"prompts_per_round": kw.pop("ppr", 4), "n_samples": kw.pop("n", 2)}
    optim = {"batch_size": kw.pop("batch", 4), "episodes": kw.pop("episodes", 2)}
    optim["warmup_ratio"] = kw.pop("warmup_ratio", 0.1)
    return Recipe.model_validate({"rl": {"rollout": ro, "optim": optim, **kw}}).rl


def _stub(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


@pytest.fixture
def samples_generator(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", _stub("vllm", SamplingParams=dict))
    monkeypatch.setitem(sys.modules, "openrlhf.trainer.ray", _stub("openrlhf.trainer.ray"))
    monkeypatch.setitem(
        sys.modules,
        "openrlhf.trainer.ray.vllm_engine",
        _stub("openrlhf.trainer.ray.vllm_engine", batch_vllm_engine_call=lambda *a, **k: None),
    )
    spec = importlib.util.find_spec("openrlhf")
    path = Path(spec.origin).parent / "trainer" / "ppo_utils" / "samples_generator.py"
    loaded = importlib.util.spec_from_file_location("installed_samples_generator", path)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    module.ray = types.SimpleNamespace(
        wait=lambda refs, **kw: (refs[:1], refs[1:]), get=lambda ref: ref
    )
    return module


def openrlhf_rounds(module, n_prompts: int, ppr: int, n: int, episodes: int) -> list[int]:
    """Samples per round, as OpenRLHF 0.11.2's PPOTrainer.fit loop gets them."""
    import torch

    loader = torch.utils.data.DataLoader(  # prepare_datasets: batch size 1, drop_last=True
        [f"p{i}" for i in range(n_prompts)],
        batch_size=1,
        shuffle=True,
        drop_last=True,
        collate_fn=lambda items: (None, items, ["{}"] * len(items), [None] * len(items)),
    )
    gen = object.__new__(module.SamplesGenerator)
    gen.prompts_dataloader = loader
    gen.args = types.SimpleNamespace(
        rollout=types.SimpleNamespace(batch_size=ppr, n_samples_per_prompt=n),
        vllm=types.SimpleNamespace(enable_sleep=False),
        algo=types.SimpleNamespace(dynamic_filtering_enable=False),
    )
    # one "engine response" per prompt: a group of n samples
    gen._dispatch_prompts_to_vllm = lambda prompts, labels, images=None, **kw: [
        [p] * n for p in prompts
    ]
    gen._process_response_into_experience = lambda response, **kw: response
    sizes = []
    for _ in range(episodes):  # PPOTrainer.fit, as written in 0.11.2
        while True:
            samples, _, _, exhausted = gen.generate_samples()
            if not samples:
                if exhausted:
                    break
                continue
            sizes.append(len(samples))
            if exhausted:
                break
    return sizes


@pytest.mark.parametrize(
    ("n_prompts", "ppr", "n", "batch", "episodes"),
    [(13, 4, 2, 4, 2), (12, 4, 2, 4, 3), (5, 8, 1, 2, 1), (30, 7, 2, 2, 2)],
)
def test_rounds_and_steps_match_openrlhf(samples_generator, n_prompts, ppr, n, batch, episodes):
    sizes = openrlhf_rounds(samples_generator, n_prompts, ppr, n, episodes)
    s = plan_schedule(rl(ppr=ppr, n=n, batch=batch, episodes=episodes), n_prompts)
    assert s.rounds == len(sizes)
    assert [s.round_size(r) * n for r in range(s.rounds)] == sizes
    # the actor's loader drops an incomplete batch: floor per round; the lr horizon is
    # prepare_datasets' max_steps = prompts * n // batch * episodes
    assert [s.steps_in_round(r) for r in range(s.rounds)] == [k // batch for k in sizes]
    assert s.total_steps == sum(k // batch for k in sizes) == n_prompts * n // batch * episodes


def test_round_prompts_cover_each_episode_once():
    s = plan_schedule(rl(ppr=4, episodes=2), 13)
    episode = [s.round_prompts(r, seed=3) for r in range(4)]
    assert [len(p) for p in episode] == [4, 4, 4, 1]
    assert sorted(i for p in episode for i in p) == list(range(13))
    again = [s.round_prompts(r, seed=3) for r in range(4, 8)]
    assert sorted(i for p in again for i in p) == list(range(13))
    assert episode != again  # episode e shuffles with seed + e


def test_max_rounds_below_an_episode_shrinks_the_pool():
    s = plan_schedule(rl(ppr=4, episodes=3, max_rounds=2), 13)
    assert (s.pool, s.episodes, s.rounds, s.max_samples) == (8, 1, 2, 8)
    assert s.total_steps == 2 * 2 and s.openrlhf_problem is None
    assert sorted(i for r in range(2) for i in s.round_prompts(r, 0)) == list(range(8))


def test_max_rounds_in_whole_episodes_and_mid_episode():
    whole = plan_schedule(rl(ppr=4, episodes=3, max_rounds=8), 13)
    assert (whole.pool, whole.episodes, whole.rounds, whole.max_samples) == (13, 2, 8, None)
    assert whole.openrlhf_problem is None
    mid = plan_schedule(rl(ppr=4, episodes=3, max_rounds=6), 13)
    assert (mid.episodes, mid.rounds) == (2, 6)
    assert "use at most 3, or a multiple of 4" in mid.openrlhf_problem
    beyond = plan_schedule(rl(ppr=4, episodes=1, max_rounds=50), 13)
    assert beyond.rounds == 4 and beyond.openrlhf_problem is None


@pytest.mark.parametrize("kind", ["cosine", "constant"])
def test_lr_factor_is_transformers_scheduler(kind):
    import torch
    from transformers import get_scheduler

    s = plan_schedule(rl(ppr=4, episodes=2, warmup_ratio=0.2), 13)
    assert (s.total_steps, s.warmup_steps) == (12, 3)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    name = "cosine_with_min_lr" if kind == "cosine" else "constant"
    extra = {"min_lr_rate": 0.5} if kind == "cosine" else {}
    sched = get_scheduler(
        name,
        opt,
        num_warmup_steps=s.warmup_steps,
        num_training_steps=s.total_steps,
        scheduler_specific_kwargs=extra,
    )
    theirs = []
    for _ in range(s.total_steps):
        theirs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    ours = [s.lr_factor(i, min_lr_ratio=0.5, kind=kind) for i in range(s.total_steps)]
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_paper_recipe_has_one_round_count_everywhere(tmp_path):
    from pixelctl.engines.openrlhf import submit

    # (temperature_after_tool=null: the OpenRLHF dry run refuses the off-policy 0.9)
    overrides = [f"launch.runs_root={tmp_path}", "rl.rollout.temperature_after_tool=null"]
    loaded = load_recipe(ROOT / "recipes/7b_a800.yaml", overrides)
    derived = {d.name: d.value for d in derive(loaded.recipe)[0] if d.stage == "rl"}
    s = plan_schedule(loaded.recipe.rl, loaded.recipe.rl.expected_prompts)
    # 15,000 prompts / 512 a round: 29 full rounds and one of 152, three episodes
    assert derived["rounds"] == s.rounds == 90
    assert derived["total optimizer steps"] == s.total_steps == 3 * (29 * 16 + 4) == 1404
    assert derived["warm-up steps"] == s.warmup_steps == 43
    text = submit.plan(loaded)
    assert "90 rounds: 3 episode(s) × 30 rounds of 512 prompts" in text
    assert "last round has 152 prompts" in text
    assert "--train.num_episodes 3" in text
