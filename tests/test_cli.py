"""The CLI: validate, env, stage plumbing (dry-run, run dirs, resume), help and start-up cost."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pixelctl.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_version():
    from pixelctl import __version__

    res = invoke("--version")
    assert res.exit_code == 0 and res.output.strip() == f"pixelctl {__version__}"


@pytest.mark.parametrize("recipe", ["7b_a800", "tiny_cpu"])
def test_validate_shipped_recipes_shows_derived_numbers(recipe):
    res = invoke("validate", ROOT / "recipes" / f"{recipe}.yaml")
    assert res.exit_code == 0, res.output
    assert "schema valid" in res.output and "Derived numbers" in res.output
    assert "optimizer steps per round" in res.output


def test_validate_misspelt_key_exits_nonzero_with_suggestion():
    res = invoke("validate", ROOT / "recipes/tiny_cpu.yaml", "rl.rollout.n_sample=16")
    assert res.exit_code == 2
    assert "did you mean rl.rollout.n_samples?" in res.output
    assert "recipes/tiny_cpu.yaml: 1 problem" in res.output


def test_validate_wrong_type_names_key_and_type():
    res = invoke("validate", ROOT / "recipes/7b_a800.yaml", "sft.lr=fast")
    assert res.exit_code == 2
    assert "sft.lr: got 'fast'" in res.output and "expected a number" in res.output


def test_validate_json_is_the_resolved_recipe():
    res = invoke("validate", ROOT / "recipes/tiny_cpu.yaml", "rl.rollout.n_samples=2", "--json")
    assert res.exit_code == 0
    assert json.loads(res.output)["rl"]["rollout"]["n_samples"] == 2


def test_validate_stage_filter_and_bad_stage():
    res = invoke("validate", ROOT / "recipes/tiny_cpu.yaml", "--stage", "rl")
    assert res.exit_code == 0 and "rl.engine" in res.output and "sft.lr " not in res.output
    assert invoke("validate", ROOT / "recipes/tiny_cpu.yaml", "--stage", "rlx").exit_code == 2


def test_validate_arithmetic_problem_exits_1():
    res = invoke("validate", ROOT / "recipes/7b_a800.yaml", "launch.rl.vllm_engines=64")
    assert res.exit_code == 1 and "do not fit the 32 declared" in res.output


def test_env_json_reports_pins():
    res = invoke("env", "--json")
    assert res.exit_code == 0
    info = json.loads(res.output)
    assert info["pins"]["pydantic"]["wanted"] == "2.14.3"
    assert isinstance(info["pins"]["pydantic"]["ok"], bool)


@pytest.mark.parametrize(
    "cmd",
    [[], ["validate"], ["env"], ["synth"], ["sft"], ["rl"], ["eval"], ["tool"], ["tool", "run"]],
)
def test_every_help_ends_with_examples(cmd):
    res = invoke(*cmd, "--help")
    assert res.exit_code == 0
    tail = res.output.rstrip().splitlines()
    examples = [i for i, line in enumerate(tail) if line.strip() == "Examples"]
    assert examples, res.output
    section = [line.strip() for line in tail[examples[-1] + 1 :] if line.strip()]
    commands = [line for line in section if line.startswith("$ ")]
    assert section[0].startswith("$ ") and commands
    assert any("pixelctl" in line for line in commands)


def test_help_and_validate_import_no_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from pixelctl.cli.app import app\n"
        f"r = CliRunner().invoke(app, ['validate', {str(ROOT / 'recipes/7b_a800.yaml')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'transformers', 'ray', 'vllm', 'trl') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def write_recipe(tmp_path, **sections):
    data = {"launch": {"runs_root": str(tmp_path / "runs")}, **sections}
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_a_stage_refusing_at_plan_leaves_no_run_dir(tmp_path, monkeypatch):
    from pixelctl.errors import StageError

    def refuse(loaded):
        raise StageError("no data at data/rl.jsonl")

    monkeypatch.setattr("pixelctl.stages.rl.plan", refuse)
    res = invoke("rl", write_recipe(tmp_path))
    assert res.exit_code == 1 and "pixelctl rl: no data at data/rl.jsonl" in res.output
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def fake_stage(monkeypatch):
    """A stage whose run logs one metric per call: the CLI plumbing, exercised for real."""
    calls = []

    def plan(loaded):
        return f"would train with lr={loaded.recipe.sft.lr}"

    def run(loaded, run_dir):
        calls.append(loaded.recipe.sft.lr)
        run_dir.log_metrics({"step": len(calls), "lr": loaded.recipe.sft.lr})

    monkeypatch.setattr("pixelctl.stages.sft.plan", plan)
    monkeypatch.setattr("pixelctl.stages.sft.preflight", lambda loaded: None)
    monkeypatch.setattr("pixelctl.stages.sft.run", run)
    return calls


def test_stage_dry_run_prints_plan_and_creates_nothing(tmp_path, fake_stage):
    res = invoke("sft", write_recipe(tmp_path), "sft.lr=0.5", "--dry-run")
    assert res.exit_code == 0 and "would train with lr=0.5" in res.output
    assert fake_stage == [] and not (tmp_path / "runs").exists()


def test_stage_run_then_resume(tmp_path, fake_stage):
    res = invoke("sft", write_recipe(tmp_path), "sft.lr=0.5", "--tag", "t")
    assert res.exit_code == 0, res.output
    [run_dir] = (tmp_path / "runs" / "sft").glob("r-*-t")
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "ok"
    assert (run_dir / "plan.txt").read_text().strip() == "would train with lr=0.5"
    res = invoke("sft", "--resume", run_dir)
    assert res.exit_code == 0, res.output
    assert fake_stage == [0.5, 0.5]  # the stored config, not the defaults
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]


def test_resume_refuses_a_changed_config(tmp_path, fake_stage):
    invoke("sft", write_recipe(tmp_path), "sft.lr=0.5")
    [run_dir] = (tmp_path / "runs" / "sft").glob("r-2*")  # not the r-latest link
    res = invoke("sft", "--resume", run_dir, "sft.lr=0.7")
    assert res.exit_code == 2
    assert "sft.lr (stored 0.5, given 0.7)" in res.output
    assert fake_stage == [0.5]


def test_stage_needs_recipe_or_resume():
    res = invoke("sft")
    assert res.exit_code == 2 and "give a recipe" in res.output


def test_score_command_on_the_authors_layout(tmp_path):
    lines = [
        {"qids": "vstar-0", "solutions": "The bag is red. \\boxed{B}", "gts": "B"},
        {"qids": "vstar-1", "solutions": "\\boxed{B}", "gts": "A"},
        {"qids": "tallyqa-5", "solutions": "I count \\boxed{three}", "gts": "3"},
    ]
    path = tmp_path / "sample.eval_all.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = invoke("score", path, "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert (got["vstar"]["accuracy"], got["vstar"]["n"]) == (50.0, 2)
    assert (got["tallyqa"]["accuracy"], got["tallyqa"]["n"]) == (100.0, 1)
    assert invoke("score", tmp_path / "missing.jsonl").exit_code == 2


def test_rl_on_openrlhf_without_gpus_refuses_before_creating_a_run(tmp_path, monkeypatch):
    from pixelctl.engines.openrlhf import submit

    monkeypatch.setattr(submit, "_local_gpus", lambda: 0)
    res = invoke("rl", ROOT / "recipes/7b_a800.yaml", f"launch.runs_root={tmp_path}")
    assert res.exit_code == 1
    assert "no GPU" in res.output and "rl.engine=local" in res.output
    assert not (tmp_path / "rl").exists()


# ----------------------------------------------------------------------------- issue 16 / 14
def test_sft_dry_run_shows_plan_and_launch_before_synth_has_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/synth/7b_a800-latest here
    res = invoke("sft", ROOT / "recipes/7b_a800.yaml", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "data: runs/synth/7b_a800-latest  (MISSING)" in res.output
    assert "launch (ZeRO-2, 1 node(s)): accelerate launch" in res.output
    assert "warning: sft.data entry 'runs/synth/7b_a800-latest'" in res.output
    assert "run `pixelctl synth` first" in res.output
    assert not (tmp_path / "runs").exists()
    # a real run still refuses, before any run directory exists
    res = invoke("sft", ROOT / "recipes/7b_a800.yaml")
    assert res.exit_code == 1 and "does not exist; run `pixelctl synth` first" in res.output
    assert not (tmp_path / "runs").exists()


def test_validate_a_binary_file_an_empty_recipe_and_a_folder(tmp_path):
    binary = tmp_path / "ls"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00\x00")
    res = invoke("validate", binary)
    assert res.exit_code == 2 and "not a text file" in res.output
    assert isinstance(res.exception, SystemExit)  # a message, no UnicodeDecodeError traceback
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    res = invoke("validate", empty)
    assert res.exit_code == 2 and "the recipe is empty" in res.output
    res = invoke("validate", tmp_path)
    assert res.exit_code == 2 and "is a folder, not a recipe file" in res.output
    assert "file not found" not in res.output


def test_view_of_an_empty_folder_fails_with_a_message(tmp_path):
    res = invoke("view", tmp_path)
    assert res.exit_code == 2 and "no pixelctl run in it" in res.output


def test_view_reports_a_killed_run_with_the_resume_command(tmp_path):
    from pixelctl.rundir import RunDir

    run = RunDir.create(tmp_path, "rl", "t", {}, argv=["pixelctl", "rl"])
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run.update_meta(pid=proc.pid, process_start="1")  # meta says running, its process is gone
    res = invoke("view", tmp_path)
    assert res.exit_code == 0, res.output
    assert "was killed" in res.output and f"pixelctl rl --resume {run.path}" in res.output
    page = (tmp_path / "report" / "index.html").read_text()
    assert "killed" in page


def test_restart_goes_with_resume(tmp_path):
    res = invoke("sft", write_recipe(tmp_path), "--restart")
    assert res.exit_code == 2 and "--restart goes with --resume" in res.output


def test_ctrl_c_exits_130_with_the_resume_command(tmp_path, fake_stage, monkeypatch):
    def interrupted(loaded, run_dir):
        raise KeyboardInterrupt

    monkeypatch.setattr("pixelctl.stages.sft.run", interrupted)
    res = invoke("sft", write_recipe(tmp_path))
    [run_dir] = (tmp_path / "runs" / "sft").glob("r-2*")
    assert res.exit_code == 130
    assert f"continue with `pixelctl sft --resume {run_dir}`" in res.output
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "runs" / "sft" / "r-latest").exists()


def test_a_stage_prints_which_run_a_chain_link_took(tmp_path, fake_stage):
    from pixelctl.rundir import RunDir, running

    synth = RunDir.create(tmp_path / "runs", "synth", "r", {}, argv=["pixelctl", "synth"])
    for name in ("sft.jsonl", "rl.jsonl"):
        (synth.path / name).write_text("")
    with running(synth):
        pass
    link = tmp_path / "runs" / "synth" / "r-latest"
    res = invoke("sft", write_recipe(tmp_path, sft={"data": [str(link)]}))
    assert res.exit_code == 0, res.output
    assert f"sft.data[0]: {link} → {synth.path.name} (ok, finished" in res.output


def test_eval_config_error_leaves_no_run_folder(tmp_path):
    recipe = write_recipe(
        tmp_path,
        model={"name_or_path": "builtin:tiny-qwen2.5-vl"},
        eval={"benchmarks": [{"name": "procedural", "path": str(tmp_path / "nope.jsonl")}]},
        launch={"runs_root": str(tmp_path / "runs"), "device": "cpu"},
    )
    res = invoke("eval", recipe)
    assert res.exit_code == 2 and "nope.jsonl" in res.output
    assert not (tmp_path / "runs").exists()


def test_compat_crop_too_small_says_why_for_a_box_outside_the_image(tmp_path):
    from PIL import Image

    Image.new("RGB", (640, 480)).save(tmp_path / "a.png")
    turn = (
        '<tool_call>{"name": "crop_image_normalized", "arguments": '
        '{"bbox_2d": [2000, 2000, 2100, 2100], "target_image": 1}}</tool_call>'
    )
    res = runner.invoke(
        app, ["tool", "run", "--image", str(tmp_path / "a.png"), "--response", "-"], input=turn
    )
    out = json.loads(res.output)
    assert res.exit_code == 1
    # the model still reads the reference's words; the user also reads why
    assert out["observation"] == "\nExecution error:\nCropped image is too small: 0x0\n"
    assert out["why"] == (
        "compat reads bbox_2d [2000, 2000, 2100, 2100] as pixel coordinates (a value is 1 or "
        "more); it lies outside the 644x476 image, so clipping to the image leaves 0x0 px; both "
        "sides must be larger than 28 px. bbox_2d takes fractions in [0, 1] of the image."
    )
