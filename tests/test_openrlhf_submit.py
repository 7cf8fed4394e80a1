"""`pixelctl rl` with the OpenRLHF engine: dry-run text, the no-GPU stop, and a run up to the
submission (the submission itself goes to a real local Ray head in test_openrlhf_ray.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pixelctl.config import load_recipe
from pixelctl.engines.openrlhf import submit
from pixelctl.rundir import RunDir

ROOT = Path(__file__).resolve().parent.parent


def loaded(tmp_path: Path, *overrides: str):
    return load_recipe(
        ROOT / "recipes/7b_a800.yaml", [f"launch.runs_root={tmp_path / 'runs'}", *overrides]
    )


def test_plan_prints_the_full_command_and_the_conversion(tmp_path):
    text = submit.plan(loaded(tmp_path))
    assert "ray job submit" in text
    assert "-- env TOKENIZERS_PARALLELISM=false python -m openrlhf.cli.train_ppo_ray" in text
    assert "--actor.model_name_or_path runs/sft/7b_a800-latest/model" in text
    assert "host memory per round 154–1,125 GB" in text  # 4096 × 37.6 MB … every op used
    assert "--data.max_len 15560" in text and "32 actor ranks" in text
    assert "make apply-patches" in text
    assert (
        f"→ {tmp_path / 'runs' / 'rl' / '7b_a800-<timestamp>' / 'data' / 'prompts.jsonl'}" in text
    )
    assert "PIXELCTL_EXECUTOR_JSON" in text and "py_modules" in text


def test_without_gpus_it_stops_and_names_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setattr(submit, "_local_gpus", lambda: 0)
    with pytest.raises(submit.OpenRLHFUnavailable) as err:
        submit.run(loaded(tmp_path), run=None)  # refuses before touching the run directory
    message = str(err.value)
    assert "no GPU" in message and "http://127.0.0.1:8265" in message
    for alternative in ("rl.engine=local", "make install-gpu", "--dry-run"):
        assert alternative in message


def test_parse_step_keeps_numbers_only():
    line = "✨ Global step 7: {'policy_loss': 0.5, 'generated_samples': ['a', 1.0], 'kl': 0}"
    assert submit.parse_step(line) == {"step": 7, "policy_loss": 0.5, "kl": 0}
    assert submit.parse_step("Global step 7: {not python}") is None
    assert submit.parse_step("unrelated") is None


def test_plan_and_validate_agree_on_the_rounds(tmp_path):
    from pixelctl.cli.derived import derive

    rec = loaded(tmp_path)
    rounds = next(d for d in derive(rec.recipe)[0] if d.name == "rounds")
    assert rounds.value == 90  # ceil(15000 / 512) = 30 per episode × 3
    assert f"rounds       {rounds.how}" in submit.plan(rec)


def test_run_converts_writes_the_job_and_records_metrics(tmp_path, monkeypatch):
    monkeypatch.setattr(submit, "preflight", lambda address: None)
    submitted = {}

    def fake_submit(argv, log, run, console):  # the real submission: test_openrlhf_ray.py
        submitted["argv"] = argv
        log.parent.mkdir(parents=True, exist_ok=True)
        line = "(PPOTrainer pid=1) ✨ Global step 1: {'policy_loss': 0.5, 'pixelctl/rapr': 0.125}"
        log.write_text(line + "\n")
        run.log_metrics(submit.parse_step(line))

    monkeypatch.setattr(submit, "_submit", fake_submit)
    # word count stands in for the tokenizer here (the model folder holds no weights)
    monkeypatch.setattr(submit, "_text_counter", lambda model: lambda text: len(text.split()))
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    Image.new("RGB", (4000, 4000)).save(tmp_path / "big.png")
    data = tmp_path / "rl.jsonl"
    records = [
        {"qid": "q-1", "question": "Q", "image": ["a.png"], "answer": "1", "is_video": False},
        {"qid": "q-2", "question": "Q", "image": ["nope.png"], "answer": "1", "is_video": False},
        {"qid": "q-3", "question": "Q", "image": ["big.png"] * 2, "answer": "1", "is_video": False},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    model = tmp_path / "sft-model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # a model folder, as resolve_model requires
    (model / "preprocessor_config.json").write_text(
        json.dumps({"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14})
    )
    rec = loaded(
        tmp_path,
        f"rl.data=[{data}]",
        f"rl.init_from={model}",
        "launch.rl.nodes=1",
        "launch.rl.gpus_per_node=1",
        "launch.rl.vllm_engines=1",
    )
    run = RunDir.create(tmp_path / "runs", "rl", "7b_a800", rec.recipe.model_dump(mode="json"))

    # the launching machine's own OpenRLHF (this venv's) is unpatched: refused, named
    with pytest.raises(submit.StageError, match=r"launching machine is not patched.*make apply"):
        submit.run(rec, run)
    monkeypatch.setattr(submit, "require_patches", lambda **kw: None)
    submit.run(rec, run)

    prompts = run.path / "data" / "prompts.jsonl"
    assert len(prompts.read_text().splitlines()) == 1
    report = json.loads((run.path / "data" / "prompts.jsonl.report.json").read_text())
    assert [r["qid"] for r in report["rejects"]] == ["q-2", "q-3"]
    assert "over rl.rollout.max_prompt_tokens = 2048" in report["rejects"][1]["text"]
    plugin_copy = run.path / "job" / "agent_plugin.py"
    assert "class AgentExecutor(MultiTurnAgentExecutor)" in plugin_copy.read_text()
    argv = submitted["argv"]
    assert argv[:2] == ["ray", "job"]
    view = run.path.resolve() / "model"
    assert argv[argv.index("--actor.model_name_or_path") + 1] == str(view)
    assert (view / "config.json").resolve() == (model / "config.json").resolve()
    clamp = json.loads((view / "preprocessor_config.json").read_text())
    assert (clamp["min_pixels"], clamp["max_pixels"]) == (3136, 1568000)  # the train bounds
    assert argv[argv.index("--train.agent_func_path") + 1] == str(plugin_copy.resolve())
    assert "--ckpt.load_enable" not in argv
    assert (run.path / "job" / "submit.sh").read_text().startswith("#!/usr/bin/env bash\nray job")
    (metrics,) = run.read_metrics()
    assert metrics["step"] == 1 and metrics["pixelctl/rapr"] == 0.125
