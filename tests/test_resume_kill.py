"""Kill real stage processes and resume them: the result equals an uninterrupted run's (slow).

Each stage runs as `pixelctl <stage>` in a subprocess on the tiny recipe with small overrides.
The kill comes from the test hook `PIXELCTL_TEST_KILL_AT_STEP=N[:KILL]` (`pixelctl.rundir.
kill_point`: the process signals itself once step, chunk or seed N is logged), so the point of
interruption is chosen, never a sleep race. Nothing is faked: the real trainer, engine,
checkpoints and files.

The chain (synth → sft → rl → eval, through `-latest`) is first run once uninterrupted; those
runs are the references, and the chain links they moved must survive every killed run.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pixelctl.rundir import iter_jsonl, metric_steps

pytestmark = pytest.mark.slow

PIXELCTL = Path(sys.executable).parent / "pixelctl"
RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "tiny_cpu.yaml"
SMALL = [
    "synth.procedural.n_train=8",
    "synth.procedural.n_eval=10",  # two eval chunks (8 + 2)
    "synth.n_pixel_space=6",
    "synth.n_text_only=2",
    "sft.epochs=2.0",
    "sft.global_batch_size=4",  # 8 records: 2 steps per epoch, 4 in all
    "sft.per_device_batch_size=4",
    "sft.save_steps=2",
    "sft.logging_steps=1",
    "rl.max_rounds=2",
    "rl.save_every_rounds=1",
    "rl.rollout.prompts_per_round=2",
    "rl.rollout.n_samples=2",
    "rl.optim.batch_size=2",  # 2 optimizer steps per round, 4 in all
    "rl.optim.micro_batch_size=2",
    "rl.rollout.max_new_tokens=24",
    "eval.max_new_tokens=16",
]
# what a step's numbers are made of (time, throughput and ETA differ between any two runs)
VOLATILE = {"time", "eta_s", "tokens_per_s"}


def pixelctl(cwd: Path, *args: str, kill: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PIXELCTL_TEST_KILL_AT_STEP"}
    if kill:
        env["PIXELCTL_TEST_KILL_AT_STEP"] = kill
    env["COLUMNS"] = "200"
    return subprocess.run(
        [str(PIXELCTL), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def stage(cwd: Path, name: str, *extra: str, kill: str | None = None):
    return pixelctl(cwd, name, str(RECIPE), *SMALL, *extra, kill=kill)


def run_of(out: str) -> Path:
    line = next(x for x in out.splitlines() if x.startswith("run directory: "))
    return Path(line.removeprefix("run directory: "))


def latest(cwd: Path, name: str) -> Path:
    return (cwd / "runs" / name / "tiny_cpu-latest").resolve()


def steps(run: Path, key: str = "step") -> list[dict]:
    return [r for r in iter_jsonl(run / "metrics.jsonl") if key in r and "event" not in r]


def assert_same_metrics(got: list[dict], want: list[dict]) -> None:
    """Step for step: the same keys, equal integers, floats equal to float tolerance."""
    assert [r.get("step", r.get("done")) for r in got] == [
        r.get("step", r.get("done")) for r in want
    ]
    for g, w in zip(got, want, strict=True):
        keys = {k for k in g.keys() | w.keys() if not k.startswith(("time_", "this_run_"))}
        keys -= VOLATILE
        for k in sorted(keys):
            a, b = g.get(k), w.get(k)
            if isinstance(a, float) or isinstance(b, float):
                assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7), (k, g, w)
            else:
                assert a == b, (k, g, w)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The uninterrupted reference runs of every stage, chained through -latest."""
    cwd = tmp_path_factory.mktemp("chain")
    refs = {}
    for name in ("synth", "sft", "rl", "eval"):
        res = stage(cwd, name)
        assert res.returncode == 0, res.stdout + res.stderr
        refs[name] = run_of(res.stdout)
        assert latest(cwd, name) == (cwd / refs[name]).resolve()
    return cwd, refs


def test_synth_killed_then_resumed_writes_what_an_uninterrupted_run_writes(chain):
    cwd, refs = chain
    res = stage(cwd, "synth", kill="3:KILL")
    assert res.returncode == -9
    run = cwd / run_of(res.stdout)
    assert json.loads((run / "meta.json").read_text())["status"] == "running"  # SIGKILL: no end
    assert latest(cwd, "synth") == (cwd / refs["synth"]).resolve()  # the chain is untouched
    res = pixelctl(cwd, "synth", "--resume", str(run))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "(it was killed)" in res.stderr
    ref = cwd / refs["synth"]
    for name in ("sft.jsonl", "rl.jsonl", "eval.jsonl"):
        assert (run / name).read_text() == (ref / name).read_text(), name
    assert_same_metrics(steps(run, "done"), steps(ref, "done"))
    assert metric_steps(run / "metrics.jsonl", "done") == [8]


def test_sft_interrupted_then_resumed_logs_each_step_once_with_the_same_numbers(chain):
    cwd, refs = chain
    pin = f"sft.data=[{refs['synth']}]"  # the reference's input, whatever -latest says now
    res = stage(cwd, "sft", pin, kill="3")  # SIGINT after step 3; checkpoint-2 is on disk
    assert res.returncode == 130, res.stdout + res.stderr
    run = cwd / run_of(res.stdout)
    assert f"continue with `pixelctl sft --resume {run_of(res.stdout)}`" in res.stderr
    assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"
    assert latest(cwd, "sft") == (cwd / refs["sft"]).resolve()
    assert metric_steps(run / "metrics.jsonl") == [1, 2, 3]
    res = pixelctl(cwd, "sft", "--resume", str(run))
    assert res.returncode == 0, res.stdout + res.stderr
    assert metric_steps(run / "metrics.jsonl") == [1, 2, 3, 4]  # step 3 once, not twice
    [marker] = [r for r in iter_jsonl(run / "metrics.jsonl") if r.get("event") == "resume"]
    assert (marker["from_step"], marker["dropped_lines"]) == (2, 1)
    assert_same_metrics(steps(run), steps(cwd / refs["sft"]))
    assert latest(cwd, "sft") == run.resolve()  # finished well now: it holds a model


def test_rl_killed_before_and_after_a_checkpoint(chain):
    cwd, refs = chain
    # SIGKILL at step 1: before the first checkpoint (after round 1 = step 2)
    pin = [f"rl.data=[{refs['synth']}]", f"rl.init_from={refs['sft']}"]
    res = stage(cwd, "rl", *pin, kill="1:KILL")
    assert res.returncode == -9
    rel = run_of(res.stdout)
    run = cwd / rel
    assert latest(cwd, "rl") == (cwd / refs["rl"]).resolve()
    view = pixelctl(cwd, "view", str(rel))
    assert view.returncode == 0 and "was killed" in view.stderr
    assert f"pixelctl rl --resume {rel}" in view.stderr
    # a plain resume would silently start again at step 1: it refuses and says what to do
    res = pixelctl(cwd, "rl", "--resume", str(rel))
    assert res.returncode == 1 and "no checkpoint to resume from" in res.stderr
    assert f"pixelctl rl --resume {rel} --restart" in res.stderr
    # --restart, this time SIGKILLed at step 3 (the round-1 checkpoint holds step 2)
    res = pixelctl(cwd, "rl", "--resume", str(rel), "--restart", kill="3:KILL")
    assert res.returncode == -9
    assert metric_steps(run / "metrics.jsonl") == [1, 2, 3]
    res = pixelctl(cwd, "rl", "--resume", str(rel))
    assert res.returncode == 0, res.stdout + res.stderr
    assert metric_steps(run / "metrics.jsonl") == [1, 2, 3, 4]
    rounds = [r["round"] for r in steps(run)]
    assert rounds == [1, 1, 2, 2]  # round 2 once, though it was running at the kill
    assert_same_metrics(steps(run), steps(cwd / refs["rl"]))
    assert latest(cwd, "rl") == run.resolve()


def test_eval_interrupted_then_resumed_gives_the_same_records(chain):
    cwd, refs = chain
    data = refs["synth"] / "eval.jsonl"
    pin = [f"eval.checkpoint={refs['rl']}", f"eval.benchmarks=[{{name: procedural, path: {data}}}]"]
    res = stage(cwd, "eval", *pin, kill="1")  # SIGINT once the first chunk is on disk
    assert res.returncode == 130, res.stdout + res.stderr
    run = cwd / run_of(res.stdout)
    assert latest(cwd, "eval") == (cwd / refs["eval"]).resolve()
    assert not (run / "metrics.json").exists()
    assert len(list(iter_jsonl(run / "samples.jsonl"))) == 8
    res = pixelctl(cwd, "eval", "--resume", str(run))
    assert res.returncode == 0, res.stdout + res.stderr
    ref = cwd / refs["eval"]
    assert (run / "samples.jsonl").read_text() == (ref / "samples.jsonl").read_text()
    assert json.loads((run / "metrics.json").read_text()) == json.loads(
        (ref / "metrics.json").read_text()
    )
