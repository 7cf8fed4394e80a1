"""The single-machine GRPO engine on the tiny model: it learns, keeps the vision tower frozen,
checkpoints everything, and a resumed run continues exactly as an uninterrupted one."""

import json
import zlib

import pytest
import torch
from PIL import Image, ImageDraw

from pixelctl.config import load_recipe
from pixelctl.engines.local import loop
from pixelctl.queries import load_queries
from pixelctl.rundir import RunDir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("rl-data")
    rows = []
    for i, colour in enumerate(["red", "blue", "green", "red"]):
        img = Image.new("RGB", (560, 420), (240, 240, 240))
        ImageDraw.Draw(img).rectangle([40 * i, 30, 40 * i + 30, 60], fill=colour)
        img.save(root / f"s{i}.png")
        rows.append(
            {
                "qid": f"procedural-{i}",
                "question": "What colour is the square?",
                "image": [f"s{i}.png"],
                "answer": colour,
                "is_video": False,
            }
        )
    (root / "rl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_queries([root / "rl.jsonl"])


def recipe(tiny_model_dir, tmp_path, **rl):
    raw = {
        "model": {
            "name_or_path": str(tiny_model_dir),
            "dtype": "float32",
            "attn_implementation": "sdpa",
        },
        "executor": {"box_mode": "strict"},
        "rl": {
            "engine": "local",
            "data": ["unused"],
            "seed": 0,
            "rollout": {"n_samples": 4, "prompts_per_round": 2, "max_new_tokens": 12},
            "optim": {
                "batch_size": 4,
                "micro_batch_size": 2,
                "lr": 1.0e-2,
                "episodes": 2,
                "warmup_ratio": 0.0,
            },
            "replay": {"capacity": 16},
            "save_every_rounds": 2,
            **rl,
        },
        "launch": {"device": "cpu", "runs_root": str(tmp_path)},
    }
    return load_recipe(None, raw=raw).recipe


@pytest.fixture(autouse=True)
def varied_grades(monkeypatch):
    """Random tiny-model text is never right; grade by a stable hash of the response instead,
    so groups carry signal and the update path runs for real (deterministic given the text)."""
    monkeypatch.setattr(
        loop,
        "paper_compat_score",
        lambda response, answers, training: float(zlib.crc32(response.encode()) % 3 == 0),
    )


def new_run(tmp_path, r, tag):
    return RunDir.create(tmp_path, "rl", "t", r.model_dump(mode="json"), tag=tag)


def steps(run):
    """The last metrics line per optimizer step (a resume recomputes steps after its checkpoint)."""
    out = {}
    for rec in run.read_metrics():
        if "step" in rec:
            out[rec["step"]] = rec
    return out


def test_training_changes_text_weights_not_vision(tiny_model_dir, tmp_path, data):
    r = recipe(tiny_model_dir, tmp_path, max_rounds=2)
    run = new_run(tmp_path, r, "a")
    final = loop.train(r, run, data, str(tiny_model_dir))
    from transformers import AutoModelForImageTextToText

    before = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    after = AutoModelForImageTextToText.from_pretrained(final)
    b, a = before.state_dict(), after.state_dict()
    changed = [k for k in b if not torch.equal(b[k], a[k])]
    assert any("language_model" in k or "lm_head" in k for k in changed)
    assert not [k for k in changed if "visual" in k]
    records = steps(run)
    assert sorted(records) == [1, 2, 3, 4]  # 2 rounds × (2 prompts × 4 samples / batch 4)
    first = records[1]
    for key in (
        "accuracy",
        "rapr",
        "curiosity",
        "penalty",
        "calls_per_rollout",
        "response_tokens",
        "loss",
        "lr",
        "grad_norm",
        "time_generation",
        "time_executor",
        "time_reward",
        "time_update",
    ):
        assert key in first, key
    assert any(rec["grad_norm"] > 0 for rec in records.values())
    assert (run.path / "samples" / "round-00002.jsonl").is_file()
    sample = json.loads((run.path / "samples" / "round-00001.jsonl").read_text().splitlines()[0])
    assert sample["qid"].startswith("procedural-") and sample["messages"][0]["role"] == "system"


def with_loss_terms(r, kl_coef, entropy_coef):
    optim = r.rl.optim.model_copy(update={"kl_coef": kl_coef, "entropy_coef": entropy_coef})
    return r.model_copy(update={"rl": r.rl.model_copy(update={"optim": optim})})


def test_kl_and_entropy_terms(tiny_model_dir, tmp_path, data):
    """The KL term scores against the frozen starting model: zero before the first update,
    positive once the policy moved; each step's loss is pg + kl_coef·kl − entropy_coef·H."""
    r = with_loss_terms(recipe(tiny_model_dir, tmp_path, max_rounds=2), 0.5, 0.01)
    run = new_run(tmp_path, r, "kl")
    loop.train(r, run, data, str(tiny_model_dir))
    records = steps(run)
    assert sorted(records) == [1, 2, 3, 4]
    assert records[1]["kl"] == pytest.approx(0.0, abs=1e-6)  # the same weights, the same ids
    assert all(records[k]["kl"] > 1e-5 for k in (2, 3, 4))
    for rec in records.values():
        assert rec["entropy"] > 0.1  # a random tiny model is far from certain
        expect = rec["pg_loss"] + 0.5 * rec["kl"] - 0.01 * rec["entropy"]
        assert rec["loss"] == pytest.approx(expect, rel=1e-5, abs=1e-7)
    off = recipe(tiny_model_dir, tmp_path, max_rounds=1)
    plain = new_run(tmp_path, off, "plain")
    loop.train(off, plain, data, str(tiny_model_dir))
    assert "kl" not in steps(plain)[1] and "entropy" not in steps(plain)[1]


@pytest.mark.parametrize("kl_coef", [0.0, 0.5], ids=["no-kl", "kl"])
def test_resume_continues_exactly(tiny_model_dir, tmp_path, data, kl_coef):
    """With a KL term the resumed run's reference is the starting model again, not the
    checkpoint it resumed from (the KL of steps 5–8 would start from 0 otherwise)."""
    r = with_loss_terms(recipe(tiny_model_dir, tmp_path, max_rounds=4), kl_coef, 0.0)
    straight = new_run(tmp_path, r, "straight")
    loop.train(r, straight, data, str(tiny_model_dir))

    killed = new_run(tmp_path, r, "killed")

    def kill_after_round_3(done, total, last):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.train(r, killed, data, str(tiny_model_dir), progress=kill_after_round_3)
    assert (killed.path / "checkpoints" / "round-00002" / "COMPLETE").is_file()
    loop.train(r, killed, data, str(tiny_model_dir))  # resumes from round 2

    a, b = steps(straight), steps(killed)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    for step in range(1, 9):
        keys = ["loss", "grad_norm", "accuracy", "reward_mean", "lr", "response_tokens"]
        for key in keys + (["kl"] if kl_coef else []):
            assert b[step][key] == pytest.approx(a[step][key], rel=1e-5, abs=1e-7), (step, key)
    resumes = [m for m in killed.read_metrics() if m.get("event") == "resume"]
    assert resumes == [{**resumes[0], "from_round": 2, "from_step": 4}]
