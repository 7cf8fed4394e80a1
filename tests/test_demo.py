"""`pixelctl demo --size small`: the whole pipeline end to end on CPU, artefacts checked."""

import json

import pytest
from typer.testing import CliRunner

from pixelctl.cli.app import app
from pixelctl.rundir import iter_jsonl

pytestmark = pytest.mark.slow


def test_small_demo_runs_every_stage(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--size", "small", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    [demo] = [p for p in (tmp_path / "demo").iterdir() if not p.is_symlink()]
    meta = json.loads((demo / "meta.json").read_text())
    assert (meta["stage"], meta["status"], meta["exit_status"]) == ("demo", "ok", 0)
    summary = json.loads((demo / "summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["untrained", "after sft", "after rl"]
    assert all(s["n"] == 6 for s in summary["stages"])  # the small held-out split
    for stage in ("synth", "sft", "rl"):
        [run] = [p for p in (demo / stage).iterdir() if not p.is_symlink()]
        assert json.loads((run / "meta.json").read_text())["status"] == "ok", stage
    synth = demo / "synth" / "demo_cpu-latest"
    assert sum(1 for _ in iter_jsonl(synth / "sft.jsonl")) == 12  # 8 pixel-space + 4 text-only
    assert (demo / "sft" / "demo_cpu-latest" / "model" / "config.json").is_file()
    rl = demo / "rl" / "demo_cpu-latest"
    assert (rl / "checkpoints" / "final" / "config.json").is_file()
    rounds = {m["round"] for m in iter_jsonl(rl / "metrics.jsonl") if "round" in m}
    assert rounds == {1, 2}
    evals = sorted(p.name for p in (demo / "eval").iterdir() if not p.is_symlink())
    assert sorted(e.rsplit("-", 1)[-1] for e in evals) == ["rl", "sft", "untrained"]
    for e in evals:
        assert sum(1 for _ in iter_jsonl(demo / "eval" / e / "samples.jsonl")) == 6
    # the evals really used the stage's own models
    for e, expect in (("after-sft", "sft"), ("after-rl", "rl")):
        [run] = [p for p in (demo / "eval").iterdir() if p.name.endswith(e)]
        plan = (run / "plan.txt").read_text()
        assert str(demo / expect) in plan, plan
    assert "What each stage changed" in res.output
    # the report is written after the demo's meta.json says how it ended, never "running"
    html = (demo / "report" / "index.html").read_text()
    assert "<td>status</td><td>ok</td>" in html and "<td>running</td>" not in html


def test_small_trap_writes_curves_table_and_picture(tmp_path):
    """`pixelctl demo --trap` at CI size with one seed: both conditions from one SFT model.
    The held-out evals are left out here (the demo test runs the same eval stage), which keeps
    this test to one SFT and two short RL runs."""
    from pixelctl.cli.demo import TRAP_KEYS, run_trap

    trap = run_trap(tmp_path, "small", seeds=(0,), evaluate=False)
    meta = json.loads((trap / "meta.json").read_text())
    assert (meta["stage"], meta["status"]) == ("trap", "ok")
    [sft] = [p for p in (trap / "sft").iterdir() if not p.is_symlink()]  # one SFT checkpoint
    rl_runs = sorted(
        p.name.split("-", 3)[-1] for p in (trap / "rl").iterdir() if not p.is_symlink()
    )
    assert rl_runs == ["alpha0-seed0", "alpha0.5-seed0"]
    for run in (trap / "rl").iterdir():
        if not run.is_symlink():
            assert (
                str(sft) in (run / "config.yaml").read_text()
                or "sft/demo_cpu-latest" in (run / "config.yaml").read_text()
            )
    data = json.loads((trap / "trap.json").read_text())
    assert sorted(data["runs"]) == ["curiosity off (α=0)", "curiosity on (α=0.5)"]
    for seeds in data["runs"].values():
        rows = seeds["0"]
        assert [r["round"] for r in rows] == [1, 2]
        assert all(set(TRAP_KEYS) <= set(r) for r in rows)
    # curiosity is paid only when it is on
    off = data["runs"]["curiosity off (α=0)"]["0"]
    assert all(r["curiosity"] == 0.0 for r in off)
    assert set(data["final"]) == set(data["runs"])
    svg = (trap / "trap.svg").read_text()
    assert svg.count('class="chart"') == 6 and svg.startswith("<svg")
    html = (trap / "report" / "index.html").read_text()
    assert "the last RL round, mean ± sd over seeds" in html
    assert "<td>status</td><td>ok</td>" in html and "<td>running</td>" not in html
