"""Experiment tracking: TensorBoard event files read back with TensorBoard's own reader, and the
W&B key kept out of every file, text and command pixelctl shows or saves.

The W&B tests never need wandb (not a pixelctl dependency, not installed here): OpenRLHF runs
wandb inside the job, so what pixelctl must get right is what it renders, saves and submits.
The submission goes through the real `_submit` (subprocess, log tee, metrics) to a stand-in
`ray` executable on PATH. The stand-in parses the command line with Ray's own `ray job submit`
command (click) and builds the runtime env with Ray's own `parse_runtime_env_args`, exactly as
the real CLI does before it contacts the cluster, and records that env: a flag Ray does not take
fails here. Only the HTTP submission to a cluster is left out; that path runs for real, against
a local Ray head, in test_openrlhf_ray.py.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelctl import tracking
from pixelctl.config import RecipeError, load_recipe
from pixelctl.errors import StageError
from pixelctl.tracking import WANDB_KEY_ENV, WANDB_KEY_PLACEHOLDER, Tracker

KEY = "wandb-test-key-123"
ROOT = Path(__file__).resolve().parents[1]


def events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def cfg(**kw):
    return load_recipe(None, [], raw={"logging": kw}).recipe.logging


# ------------------------------------------------------------------------------- schema
def test_logging_defaults_to_tensorboard_only_and_rejects_unknown_keys() -> None:
    c = cfg()
    assert c.tensorboard is True and c.wandb is None
    c = cfg(wandb={"project": "pixel", "entity": "lab", "group": "ablation"})
    assert (c.wandb.project, c.wandb.entity, c.wandb.group) == ("pixel", "lab", "ablation")
    with pytest.raises(RecipeError, match=r"logging\.wandb\.key"):
        cfg(wandb={"project": "p", "key": KEY})  # a key in the recipe is refused


# ------------------------------------------------------------------------------- writers
def test_scalars_and_images_read_back_exactly(tmp_path: Path) -> None:
    with Tracker(cfg(), tmp_path) as t:
        t.scalars({"loss": 0.123456789, "step": 1, "ok": True, "tag": "x"}, step=1)
        t.scalars({"loss": 2.5e-7, "step": 2}, step=2)
        t.images("rollouts", [Image.new("RGB", (20, 10), "red")], step=2)
    acc = events(tmp_path / "tensorboard")
    assert sorted(acc.Tags()["scalars"]) == ["loss", "step"]  # no booleans, no text
    # TensorBoard stores float32: exactly the float32 of each value
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [
        (1, np.float32(0.123456789)),
        (2, np.float32(2.5e-7)),
    ]
    (img,) = acc.Images("rollouts/0")
    assert (img.step, img.width, img.height) == (2, 20, 10)


def test_a_resumed_leg_replaces_what_the_killed_one_logged_after_the_checkpoint(tmp_path):
    with Tracker(cfg(), tmp_path) as t:
        for s in (1, 2, 3, 4):
            t.scalars({"loss": float(s)}, step=s)
    with Tracker(cfg(), tmp_path, resume_step=3) as t:  # the checkpoint was at step 2
        for s in (3, 4):
            t.scalars({"loss": 10.0 * s}, step=s)
    values = [(e.step, e.value) for e in events(tmp_path / "tensorboard").Scalars("loss")]
    assert values == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]


def test_tensorboard_off_writes_nothing(tmp_path: Path) -> None:
    with Tracker(cfg(tensorboard=False), tmp_path) as t:
        t.scalars({"loss": 1.0}, step=1)
    tracking.log_final(cfg(tensorboard=False), tmp_path, {"vstar": {"accuracy": 50.0}})
    assert not (tmp_path / "tensorboard").exists()


def test_eval_final_scores(tmp_path: Path) -> None:
    scores = {"vstar": {"metric": "accuracy", "accuracy": 84.29, "paper_compat": 80.1, "n": 191}}
    tracking.log_final(cfg(), tmp_path, scores)
    acc = events(tmp_path / "tensorboard")
    assert sorted(acc.Tags()["scalars"]) == ["vstar/accuracy", "vstar/n", "vstar/paper_compat"]
    assert acc.Scalars("vstar/accuracy")[0].value == np.float32(84.29)


def test_rollout_pictures_draw_the_requested_box(tmp_path: Path) -> None:
    from pixelctl.engines.local.samples import rollout_pictures
    from pixelctl.viewer.assets import BOX_OK

    Image.new("RGB", (400, 400), "white").save(tmp_path / "in.png")
    call = '<tool_call>\n{"name": "crop_image_normalized", "arguments": {"bbox_2d": [0.25, 0.25, 0.75, 0.75], "target_image": 1}}\n</tool_call>'
    record = {
        "inputs": [str(tmp_path / "in.png")],
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "s"}]},
            {"role": "user", "content": [{"type": "image", "image": str(tmp_path / "in.png")}]},
            {"role": "assistant", "content": [{"type": "text", "text": call}]},
        ],
        "calls": [
            {
                "turn": 1,
                "name": "crop_image_normalized",
                "arguments": {"bbox_2d": [0.25, 0.25, 0.75, 0.75], "target_image": 1},
                "ok": True,
                "crop_box": [60, 60, 340, 340],
            }
        ],
    }
    path = tmp_path / "samples" / "round-00001.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(record) + "\n" + json.dumps({**record, "calls": []}) + "\n")
    boxed, plain = rollout_pictures(path, tmp_path, "strict")
    px = np.asarray(boxed)
    assert boxed.size == (400, 400)
    assert tuple(px[200, 100]) == BOX_OK  # the box's left edge, at x = 0.25 · 400
    assert tuple(px[200, 200]) == (255, 255, 255)  # inside: untouched
    assert (np.asarray(plain) == 255).all()  # no call recorded: no box


# ------------------------------------------------------------------------------- W&B key
def test_preflight_names_the_missing_key_and_package(monkeypatch) -> None:
    c = cfg(wandb={"project": "p"})
    monkeypatch.delenv(WANDB_KEY_ENV, raising=False)
    with pytest.raises(StageError, match=r"\$WANDB_API_KEY is not"):
        tracking.preflight(c, "sft")
    tracking.preflight(c, "synth")  # synth tracks nothing beyond metrics.jsonl
    tracking.preflight(cfg(), "sft")  # no W&B: nothing to check
    monkeypatch.setenv(WANDB_KEY_ENV, KEY)
    tracking.preflight(c, "rl", wandb_here=False)  # OpenRLHF: wandb runs on the cluster
    if tracking.importlib.util.find_spec("wandb") is None:
        with pytest.raises(StageError, match="pip install wandb"):
            tracking.preflight(c, "eval")


def test_a_stage_refuses_before_its_run_directory(tmp_path: Path, monkeypatch) -> None:
    from pixelctl.cli.launch import run_stage

    monkeypatch.delenv(WANDB_KEY_ENV, raising=False)
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    row = {"qid": "procedural-1", "question": "Q", "image": ["a.png"], "answer": "1"}
    (tmp_path / "e.jsonl").write_text(json.dumps({**row, "is_video": False}) + "\n")
    code = run_stage(
        "eval",
        str(ROOT / "recipes" / "tiny_cpu.yaml"),
        [
            f"launch.runs_root={tmp_path}",
            "logging.wandb={project: p}",
            "eval.backend=openai",
            f"eval.benchmarks=[{{name: procedural, path: {tmp_path}/e.jsonl}}]",
        ],
        dry_run=False,
        resume=None,
        tag=None,
    )
    assert code == 1 and not (tmp_path / "eval").exists()


FAKE_RAY = """#!{python}
import json, sys
from ray.dashboard.modules.dashboard_sdk import parse_runtime_env_args
from ray.dashboard.modules.job.cli import submit
argv = sys.argv[1:]
assert argv[:2] == ["job", "submit"], argv
ctx = submit.make_context("submit", argv[2:])  # Ray's own parser: unknown flags fail
p = ctx.params
env = parse_runtime_env_args(p["runtime_env"], p["runtime_env_json"], p["working_dir"])
json.dump({{"argv": argv, "env": env, "entrypoint": list(p["entrypoint"])}}, open({received!r}, "w"))
print("Job 'raysubmit_1' submitted successfully")
print("(PPOTrainer pid=1) \\u2728 Global step 1: {{'policy_loss': 0.5}}")
"""


def _openrlhf_run(tmp_path: Path, monkeypatch, capsys) -> tuple[Path, dict, str]:
    from pixelctl.cli.launch import execute
    from pixelctl.engines.openrlhf import submit

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    received = tmp_path / "received.json"  # outside the run directory
    ray = bin_dir / "ray"
    ray.write_text(FAKE_RAY.format(python=sys.executable, received=str(received)))
    ray.chmod(ray.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(WANDB_KEY_ENV, KEY)
    monkeypatch.setattr(submit, "preflight", lambda address: None)
    monkeypatch.setattr(submit, "require_patches", lambda **kw: None)
    monkeypatch.setattr(submit, "_text_counter", lambda model: lambda text: len(text.split()))
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    data = tmp_path / "rl.jsonl"
    row = {"qid": "q-1", "question": "Q", "image": ["a.png"], "answer": "1", "is_video": False}
    data.write_text(json.dumps(row) + "\n")
    model = tmp_path / "sft-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "preprocessor_config.json").write_text(
        json.dumps({"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14})
    )
    loaded = load_recipe(
        str(ROOT / "recipes" / "7b_a800.yaml"),
        [
            f"rl.data=[{data}]",
            f"rl.init_from={model}",
            f"launch.runs_root={tmp_path / 'runs'}",
            "launch.rl.nodes=1",
            "launch.rl.gpus_per_node=1",
            "launch.rl.vllm_engines=1",
            "logging.wandb={project: pixel, entity: lab, group: g1}",
        ],
    )
    dry = submit.plan(loaded)
    run = execute("rl", loaded, argv=["pixelctl", "rl", "recipes/7b_a800.yaml"])
    shown = capsys.readouterr()
    return run.path, json.loads(received.read_text()), dry + shown.out + shown.err


def test_the_wandb_key_reaches_the_job_and_nothing_else(tmp_path, monkeypatch, capsys) -> None:
    run_dir, received, shown = _openrlhf_run(tmp_path, monkeypatch, capsys)
    # the job got the key in its (real) runtime env, and the flags name W&B without it
    assert received["env"]["env_vars"][WANDB_KEY_ENV] == KEY
    assert "TOKENIZERS_PARALLELISM" not in received["env"]["env_vars"]  # train_ppo_ray sets it
    entry = received["entrypoint"]
    assert entry[:5] == [
        "env",
        "TOKENIZERS_PARALLELISM=false",
        "python",
        "-m",
        "openrlhf.cli.train_ppo_ray",
    ]
    argv = received["argv"]
    for flag, value in (
        ("--logger.wandb.key", WANDB_KEY_PLACEHOLDER),
        ("--logger.wandb.project", "pixel"),
        ("--logger.wandb.org", "lab"),
        ("--logger.wandb.group", "g1"),
        ("--logger.wandb.run_name", run_dir.name),
        ("--logger.tensorboard_dir", str(run_dir.resolve() / "tensorboard")),
    ):
        assert argv[argv.index(flag) + 1] == value
    assert not Path(argv[argv.index("--runtime-env") + 1]).exists()  # removed after the job
    assert KEY not in json.dumps(argv)
    # nowhere pixelctl shows or saves anything: the dry run, the console, every run file
    assert KEY not in shown and "--logger.wandb.key env:WANDB_API_KEY" in shown
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    names = {p.relative_to(run_dir).as_posix() for p in files}
    assert {"command.sh", "config.yaml", "meta.json", "plan.txt", "logs/job.log"} <= names
    assert {"job/submit.sh", "job/runtime_env.json"} <= names
    leaks = [p for p in files if KEY.encode() in p.read_bytes()]
    assert leaks == []
    shown_env = json.loads((run_dir / "job" / "runtime_env.json").read_text())
    assert WANDB_KEY_ENV not in shown_env["env_vars"]
    assert "--runtime-env-json" in (run_dir / "job" / "submit.sh").read_text()
    lines = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    assert [m["step"] for m in lines if "step" in m] == [1]  # the job's log was still parsed


def test_without_wandb_the_submitted_command_is_the_shown_one() -> None:
    argv = ["ray", "job", "submit", "--runtime-env-json", "{}", "--", "x"]
    with tracking.submitted_argv(argv, {}, cfg()) as real:
        assert real == argv


# ------------------------------------------------------------------------------- engines
@pytest.mark.slow
def test_local_rl_engine_event_files_equal_metrics_jsonl(tiny_model_dir, tmp_path, monkeypatch):
    """The tiny local GRPO run (one round, two steps): every numeric field of every metrics
    line (but its wall-clock `time`) is the TensorBoard scalar of that name at that step, and
    the round logged its rollout images."""
    import zlib

    from pixelctl.engines.local import loop
    from pixelctl.queries import load_queries
    from tests.test_local_engine import new_run, recipe

    # as in test_local_engine: the tiny model is never right; a stable hash of the text grades
    # instead, so groups carry signal and the update steps (and their metrics lines) happen
    monkeypatch.setattr(
        loop,
        "paper_compat_score",
        lambda response, answers, training: float(zlib.crc32(response.encode()) % 3 == 0),
    )

    root = tmp_path / "rl-data"
    root.mkdir()
    rows = []
    for i in range(2):
        Image.new("RGB", (280, 210), (200, 40 * i, 40)).save(root / f"s{i}.png")
        rows.append(
            {"qid": f"q-{i}", "question": "Colour?", "image": [f"s{i}.png"], "answer": "red"}
        )
    (root / "rl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = recipe(tiny_model_dir, tmp_path, max_rounds=1)
    run = new_run(tmp_path, r, "tb")
    loop.train(r, run, load_queries([root / "rl.jsonl"]), str(tiny_model_dir))
    acc = events(run.path / "tensorboard")
    lines = [{k: v for k, v in m.items() if k != "time"} for m in run.read_metrics() if "step" in m]
    assert len(lines) == 2  # 8 rollouts / batch 4
    checked = 0
    for m in lines:
        for k, v in tracking.numeric(m).items():
            got = {e.step: e.value for e in acc.Scalars(k)}
            assert got[m["step"]] == np.float32(v), (k, m["step"])
            checked += 1
    assert checked == sum(len(tracking.numeric(m)) for m in lines) > 40
    image_steps = [e.step for e in acc.Images("rollouts/0")]
    assert image_steps == [2]
    assert "time" not in acc.Tags()["scalars"]


@pytest.mark.slow
def test_sft_trl_writes_event_files_into_the_run(tiny_model_dir, tmp_path) -> None:
    from pixelctl.cli.launch import run_stage
    from tests.test_sft_train import RECIPE, only_run, overrides

    code = run_stage(
        "sft", RECIPE, overrides(tmp_path, tiny_model_dir, steps=2), dry_run=False, resume=None,
        tag=None,
    )  # fmt: skip
    assert code == 0
    run = only_run(tmp_path)
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    acc = events(run / "tensorboard")
    losses = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    losses = {m["step"]: m["loss"] for m in losses if "loss" in m}
    got = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert got.keys() == losses.keys() and all(
        got[s] == pytest.approx(v, rel=1e-6) for s, v in losses.items()
    )
    assert not (run / "checkpoints" / "runs").exists()  # not transformers' default folder
