"""`pixelctl reproduce`: the plan, the GPU refusal, the dataset download."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixelctl.cli import reproduce
from pixelctl.cli.app import app
from pixelctl.config import load_recipe

ROOT = Path(__file__).resolve().parent.parent


def test_plan_names_data_commands_and_cost():
    text = reproduce.plan(load_recipe(ROOT / "recipes/7b_a800.yaml"))
    assert "hf download --repo-type dataset TIGER-Lab/PixelReasoner-RL-Data" in text
    for stage in ("sft", "rl", "eval"):
        assert f"pixelctl {stage} {ROOT / 'recipes/7b_a800.yaml'}" in text
    assert "estimated RL cost: 640.0 GPU-hours" in text  # the paper's run is the paper's cost


def test_cost_scales_with_the_rl_work():
    half = load_recipe(ROOT / "recipes/7b_a800.yaml", ["rl.optim.episodes=1"])
    assert reproduce.gpu_hours(half) == pytest.approx(640 / 3, abs=0.1)


def test_without_gpus_it_prints_the_plan_and_stops(monkeypatch, tmp_path):
    monkeypatch.setattr(reproduce, "has_gpus", lambda: False)
    res = CliRunner().invoke(
        app, ["reproduce", str(ROOT / "recipes/7b_a800.yaml"), f"launch.runs_root={tmp_path}"]
    )
    assert res.exit_code == 1
    assert "stages, in order" in res.output and "no GPU on this machine" in res.output
    assert not any(tmp_path.iterdir())


def test_fetch_downloads_both_datasets_and_explains_failures(tmp_path):
    calls = []
    got = reproduce.fetch_datasets(tmp_path, download=lambda **kw: calls.append(kw))
    assert got == {"sft": tmp_path / "sft", "rl": tmp_path / "rl"}
    assert [(c["repo_id"], c["repo_type"], c["local_dir"]) for c in calls] == [
        ("TIGER-Lab/PixelReasoner-SFT-Data", "dataset", str(tmp_path / "sft")),
        ("TIGER-Lab/PixelReasoner-RL-Data", "dataset", str(tmp_path / "rl")),
    ]

    def offline(**kw):
        raise OSError("network unreachable")

    with pytest.raises(RuntimeError, match="could not download TIGER-Lab/PixelReasoner-SFT-Data"):
        reproduce.fetch_datasets(tmp_path / "elsewhere", download=offline)
    # the first folder is complete: a second fetch there does not download again
    assert reproduce.fetch_datasets(tmp_path, download=offline)["rl"] == tmp_path / "rl"
