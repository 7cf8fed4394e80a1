"""The patches against the installed 0.11.2: they apply to a copy, compile, and both patched
functions run: `SamplesGenerator._generate_vllm` (Ray and vLLM stubbed, the responses are what
our agent returns) and `BasePPOTrainer.train_step`, executed from the patched source with
experiences that carry pixel tensors. `patchcheck` tells the copy from the installed package.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import py_compile
import sys
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
PATCHES = sorted((ROOT / "patches" / "openrlhf-0.11.2").glob("*.patch"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel_tree(tmp_path_factory) -> Path:
    """A copy of the installed openrlhf 0.11.2 with every patch applied (the venv's own
    package is never modified)."""
    from tests.test_openrlhf_ray import patched_openrlhf

    return patched_openrlhf(tmp_path_factory.mktemp("openrlhf-patched")).parent


def test_there_are_two_small_patches():
    assert [p.name for p in PATCHES] == [
        "0001-group-reward-hook.patch",
        "0002-selective-sample-replay.patch",
    ]
    for p in PATCHES:
        added = [
            line
            for line in p.read_text().splitlines()
            if line.startswith("+") and not line.startswith("+++")
        ]
        assert 0 < len(added) <= 5, p.name  # the logic lives in pixelctl.engines.openrlhf.hook
        # pixelctl is imported inside the call, and only in a pixelctl job (the env var)
        assert not any(line.startswith("+from pixelctl") for line in added), p.name


def test_every_patch_applies_and_compiles(wheel_tree):
    for rel in ("trainer/ppo_utils/samples_generator.py", "trainer/ppo_trainer.py"):
        path = wheel_tree / "openrlhf" / rel
        assert "from pixelctl.engines.openrlhf.hook import" in path.read_text()
        py_compile.compile(str(path), doraise=True)


def _stub(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def _response(correct: float, n_calls: int) -> dict:
    """What our AgentExecutor returns for one sample (see test_openrlhf_plugin)."""
    return {
        "prompt": "p",
        "label": "{}",
        "images": None,
        "mm_train_inputs": None,
        "reward": max(correct, 0.0),
        "scores": float(correct > 0.5),
        "observation_tokens": [1, 2, 3, 4, 5],
        "action_ranges": [(2, 5)],
        "rollout_log_probs": None,
        "truncated": False,
        "extra_logs": {
            "pixelctl/correct": correct,
            "pixelctl/n_calls": float(n_calls),
            "pixelctl/n_operations": float(n_calls),
            "pixelctl/is_video": 0.0,
            "pixelctl/final_error": 0.0,
        },
    }


def test_patched_generator_shapes_each_group(wheel_tree, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", _stub("vllm", SamplingParams=dict))
    monkeypatch.setitem(sys.modules, "openrlhf.trainer.ray", _stub("openrlhf.trainer.ray"))
    monkeypatch.setitem(
        sys.modules,
        "openrlhf.trainer.ray.vllm_engine",
        _stub("openrlhf.trainer.ray.vllm_engine", batch_vllm_engine_call=lambda *a, **k: None),
    )
    monkeypatch.setenv(
        "PIXELCTL_REWARD_JSON",
        json.dumps({"mode": "paper", "alpha": 0.5, "beta": 0.05, "H": 0.3, "N": 1}),
    )
    path = wheel_tree / "openrlhf" / "trainer" / "ppo_utils" / "samples_generator.py"
    spec = importlib.util.spec_from_file_location("patched_samples_generator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    groups = {
        "g1": [_response(1.0, 1)] + [_response(0.0, 0)] * 7,  # RaPR 1/8: curiosity 0.0875
        # all correct: shaped rewards 0.95 (one call over N) would pass the (0, 1) filter, but
        # the filter reads accuracy (scores, mean 1.0), so the group is dropped and replaced
        "g2": [_response(1.0, 2)] * 8,
        "g3": [_response(0.0, 1)] * 2 + [_response(1.0, 0)] * 6,  # RaPR 2/8: curiosity 0.025
    }
    module.ray = types.SimpleNamespace(
        wait=lambda refs, **kw: (refs[:1], refs[1:]), get=lambda ref: groups[ref]
    )
    gen = object.__new__(module.SamplesGenerator)
    gen.args = types.SimpleNamespace(algo=types.SimpleNamespace(dynamic_filtering_range=(0.0, 1.0)))
    gen._dispatch_prompts_to_vllm = lambda prompts, labels, images=None, **kw: list(prompts)
    batches = iter(
        [(None, ["g1", "g2"], ["{}", "{}"], [None, None]), (None, ["g3"], ["{}"], [None])]
    )
    experiences, consumed, _ = gen._generate_vllm(batches, 2, dynamic_filtering=True, max_len=64)
    assert consumed == 3
    rewards = [round(e.rewards.item(), 6) for e in experiences]
    assert rewards == [1.0875] + [0.0] * 7 + [0.025] * 2 + [1.0] * 6
    assert [e.info["reward"].item() for e in experiences] == pytest.approx(rewards)
    assert [e.scores.item() for e in experiences[:8]] == [1.0] + [0.0] * 7
    assert experiences[0].info["pixelctl/rapr"].item() == 0.125
    assert experiences[8].info["pixelctl/curiosity"].item() == pytest.approx(0.025)


def test_patchcheck_tells_patched_from_unpatched(wheel_tree):
    from pixelctl.engines.openrlhf import patchcheck

    assert patchcheck.missing(wheel_tree / "openrlhf") == []
    installed = patchcheck.missing()  # this venv's package, never patched by the tests
    assert [m.split(" in ")[0] for m in installed] == [
        "SamplesGenerator._generate_vllm",
        "BasePPOTrainer.train_step",
    ]
    with pytest.raises(patchcheck.PatchesMissing, match=r"on node n1 .*make apply-patches"):
        patchcheck.require_patches(where="n1")


def _method(path: Path, cls: str, name: str, ns: dict):
    tree = ast.parse(path.read_text())
    node = next(
        f
        for c in tree.body
        if isinstance(c, ast.ClassDef) and c.name == cls
        for f in c.body
        if isinstance(f, ast.FunctionDef) and f.name == name
    )
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), ns)
    return ns[name]


def test_patched_train_step_replays_samples_with_pixel_tensors(wheel_tree, monkeypatch):
    """The patched `train_step` source itself, bound to a stand-in trainer: what reaches the
    actors is the SSR batch, same count, each sample with its own pixel tensors."""
    import os

    from openrlhf.trainer.ppo_utils.experience import Experience, balance_experiences

    monkeypatch.setenv(
        "PIXELCTL_REPLAY_JSON",
        json.dumps({"ssr": True, "zero_signal_filter": True, "capacity": 64, "epsilon": 0.01,
                    "seed": 0}),
    )  # fmt: skip
    path = wheel_tree / "openrlhf" / "trainer" / "ppo_trainer.py"
    ns = {
        "os": os,
        "time": __import__("time"),
        "torch": torch,
        "ray": types.SimpleNamespace(get=lambda refs: refs),
        "balance_experiences": balance_experiences,
        "logger": types.SimpleNamespace(info=lambda *a: None),
        "Dict": dict,
        "Tuple": tuple,
    }
    train_step = _method(path, "BasePPOTrainer", "train_step", ns)
    stats = _method(path, "BasePPOTrainer", "_compute_rollout_stats", ns)

    def sample(i: int, reward: float, mean: float) -> Experience:
        e = Experience(
            sequences=torch.arange(6).unsqueeze(0),
            attention_mask=torch.ones(1, 6, dtype=torch.long),
            action_mask=torch.tensor([[0, 0, 1, 1, 1]]),
            rewards=torch.tensor([reward]),
            scores=torch.tensor([reward]),
            response_length=torch.tensor([3.0]),
            truncated=torch.tensor([False]),
            labels=[f"s{i}"],
            images=[[f"/img/{i}.png"]],
            mm_train_inputs=[
                {
                    "pixel_values": torch.full((4 * (i + 1), 1176), float(i)),
                    "image_grid_thw": torch.tensor([[1, 2, 2 * (i + 1)]]),
                }
            ],
            info={
                "reward": torch.tensor([reward]),
                "pixelctl/correct": torch.tensor([reward]),
                "pixelctl/rapr": torch.tensor([0.0]),
                "pixelctl/failed": torch.tensor([0.0]),
            },
        )
        e.advantages = torch.full((1, 5), reward - mean) * e.action_mask
        e.index = [i]
        return e

    rewards = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]  # group 2 is uniform: no signal
    experiences = [sample(i, r, 0.25 if i < 4 else 1.0) for i, r in enumerate(rewards)]
    received = []
    trainer = types.SimpleNamespace(
        args=types.SimpleNamespace(
            rollout=types.SimpleNamespace(n_samples_per_prompt=4, batch_size=2),
            train=types.SimpleNamespace(dynamic_batch_enable=False),
            ckpt=types.SimpleNamespace(path="/nonexistent", load_enable=False),
        ),
        experience_maker=types.SimpleNamespace(make_experience_batch=lambda samples: samples),
        tokenizer=types.SimpleNamespace(decode=lambda *a, **k: ["text"]),
        actor_model_group=types.SimpleNamespace(
            async_run_method_batch=lambda method_name, experience: received.extend(experience) or []
        ),
        critic_model_group=None,
        vllm_engines=None,
        ppo_train=lambda step: {"policy_loss": 0.0},
    )
    trainer._compute_rollout_stats = lambda exps: stats(trainer, exps)
    status, step = train_step(trainer, experiences, 4)
    assert step == 5 and status["rollout/num_samples"] == 8.0
    labels = [label for e in received for label in e.labels]
    assert len(labels) == 8 and set(labels) == {"s0", "s1", "s2", "s3"}
    for e in received:
        for label, mm in zip(e.labels, e.mm_train_inputs, strict=True):
            i = int(label[1:])
            assert mm["pixel_values"].shape == (4 * (i + 1), 1176)
            assert bool((mm["pixel_values"] == i).all())
    assert trainer._pixelctl_checked  # the group hook's mark was found before round 1
