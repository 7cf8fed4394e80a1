"""Run directories: created with their records, never overwritten, resumed with their config;
`-latest` only for runs that finished well; killed runs recognised; metrics never hold a step
twice."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pixelctl.rundir import (
    RunDir,
    RunDirError,
    effective_status,
    iter_jsonl,
    jsonl_rows,
    kill_point,
    metric_steps,
    resolve_link,
    running,
    status_line,
)


def make(tmp_path, tag=None, stage="sft"):
    return RunDir.create(
        tmp_path,
        stage,
        "tiny",
        {"sft": {"lr": 0.1}},
        tag=tag,
        argv=["pixelctl", stage, "r.yaml", "sft.lr=0.1"],
    )


def finish_with_model(run):
    (run.path / "model").mkdir()
    (run.path / "model" / "config.json").write_text("{}")
    with running(run):
        pass
    return run


def test_create_writes_config_command_meta_and_no_latest_link_yet(tmp_path):
    run = make(tmp_path, tag="a")
    assert run.path.parent == tmp_path / "sft" and run.path.name.endswith("-a")
    assert yaml.safe_load((run.path / "config.yaml").read_text()) == {"sft": {"lr": 0.1}}
    command = (run.path / "command.sh").read_text()
    assert command.rstrip().endswith("pixelctl sft r.yaml sft.lr=0.1")
    assert os.access(run.path / "command.sh", os.X_OK)
    meta = run.meta()
    assert meta["stage"] == "sft" and meta["status"] == "running" and meta["end"] is None
    assert meta["packages"]["pydantic"] is not None and "cpus" in meta["devices"]
    threads = meta["devices"]["threads"]  # CPU float order depends on them (docs/demo.md)
    assert set(threads) == {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "torch"}
    assert {"git_sha", "git_dirty", "host", "start", "python"} <= meta.keys()
    assert (meta["pid"], meta["recipe"], meta["tag"]) == (os.getpid(), "tiny", "a")
    assert meta["process_start"] is not None
    # a run that has not finished (well) never takes over the chain link
    assert not (tmp_path / "sft" / "tiny-a-latest").exists()
    assert not (tmp_path / "sft" / "tiny-latest").exists()


def test_same_second_runs_get_a_suffix_and_never_overwrite(tmp_path):
    run = make(tmp_path, tag="same")
    (run.path / "metrics.jsonl").write_text('{"step": 1}\n')
    others = [make(tmp_path, tag="same") for _ in range(3)]  # same second, same tag
    names = [run.path.name, *(o.path.name for o in others)]
    assert len(set(names)) == 4
    # most of them share the second: those get -2, -3 … after the tag
    assert all(n.endswith(("-same", "-same-2", "-same-3", "-same-4")) for n in names)
    assert (run.path / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_latest_moves_only_to_a_run_that_finished_well_with_its_outputs(tmp_path):
    link = tmp_path / "sft" / "tiny-latest"
    good = finish_with_model(make(tmp_path))
    assert link.resolve() == good.path.resolve()
    assert good.latest_note == f"{link} → {good.path.name}"
    # a crash: status failed, the link stays
    crashed = make(tmp_path)
    with pytest.raises(ValueError), running(crashed):
        raise ValueError("boom")
    assert link.resolve() == good.path.resolve()
    # an ok run without the model the next stage needs: the link stays, and it says why
    empty = make(tmp_path)
    with running(empty):
        pass
    assert empty.meta()["status"] == "ok" and link.resolve() == good.path.resolve()
    assert empty.latest_note == "tiny-latest not moved: this run holds no model/config.json"
    # Ctrl-C
    stopped = make(tmp_path)
    with pytest.raises(KeyboardInterrupt), running(stopped):
        raise KeyboardInterrupt
    assert link.resolve() == good.path.resolve()


def test_a_tagged_run_moves_its_own_link(tmp_path):
    plain = finish_with_model(make(tmp_path))
    trial = finish_with_model(make(tmp_path, tag="epoch1"))
    assert (tmp_path / "sft" / "tiny-latest").resolve() == plain.path.resolve()
    assert (tmp_path / "sft" / "tiny-epoch1-latest").resolve() == trial.path.resolve()


def test_running_records_exit_status_and_ctrl_c_prints_the_resume_command(tmp_path, capsys):
    run = make(tmp_path)
    with running(run):
        run.log_metrics({"step": 1, "loss": 2.5})
    meta = run.meta()
    assert (meta["status"], meta["exit_status"]) == ("ok", 0) and meta["end"]
    run2 = make(tmp_path, tag="b")
    with pytest.raises(ValueError), running(run2):
        raise ValueError("boom")
    assert run2.meta()["status"] == "failed" and "boom" in run2.meta()["error"]
    run3 = make(tmp_path, tag="c")
    with pytest.raises(KeyboardInterrupt), running(run3):
        raise KeyboardInterrupt
    assert (run3.meta()["status"], run3.meta()["exit_status"]) == ("interrupted", 130)
    assert f"continue with `pixelctl sft --resume {run3.path}`" in capsys.readouterr().err


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_running_run_whose_process_is_gone_is_killed(tmp_path):
    run = make(tmp_path)
    assert effective_status(run.meta()) == "running"  # this very process
    run.update_meta(pid=_dead_pid(), process_start="1")
    assert effective_status(run.meta()) == "killed"
    line = status_line(run.path)
    assert "was killed" in line and f"`pixelctl sft --resume {run.path}`" in line
    # same pid, another process start (a pid reused after a reboot or wrap-around)
    run.update_meta(pid=os.getpid(), process_start="-1")
    assert effective_status(run.meta()) == "killed"
    # another host: cannot tell, so it is not called killed
    run.update_meta(host="elsewhere")
    assert effective_status(run.meta()) == "running"


def test_resume_a_killed_run_but_not_a_live_one(tmp_path):
    run = make(tmp_path)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = Path(f"/proc/{live.pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]
        run.update_meta(pid=live.pid, process_start=start)
        with pytest.raises(RunDirError, match="still running"):
            RunDir.resume(run.path, "sft")
    finally:
        live.kill()
        live.wait()
    again = RunDir.resume(run.path, "sft")
    assert again.resumed_status == "killed" and again.meta()["resumes"][-1]["was"] == "killed"
    assert again.meta()["pid"] == os.getpid()


def test_resume_keeps_records_and_appends(tmp_path):
    run = make(tmp_path)
    run.log_metrics({"step": 1})
    run.finish(130)
    again = RunDir.resume(run.path, "sft")
    again.log_metrics({"step": 2})
    assert [m["step"] for m in again.read_metrics()] == [1, 2]
    meta = again.meta()
    assert meta["status"] == "running" and len(meta["resumes"]) == 1
    assert again.stored_config() == {"sft": {"lr": 0.1}}


def test_rewind_metrics_drops_the_tail_after_the_checkpoint(tmp_path):
    run = make(tmp_path)
    for s in range(1, 6):
        run.log_metrics({"step": s, "loss": 1.0 / s})
    with run.metrics_path.open("a") as f:
        f.write('{"step": 6, "lo')  # a SIGKILL mid-write
    dropped = run.rewind_metrics(lambda r: r["step"] <= 3, from_step=3)
    assert dropped == 2  # steps 4 and 5 (the torn line is no record)
    for s in range(4, 7):
        run.log_metrics({"step": s, "loss": 1.0 / s})
    assert metric_steps(run.metrics_path) == [1, 2, 3, 4, 5, 6]
    marker = [r for r in run.read_metrics() if "event" in r]
    assert marker == [
        {"time": marker[0]["time"], "event": "resume", "dropped_lines": 2, "from_step": 3}
    ]


def test_resolve_link_names_the_run_it_took_or_the_killed_one(tmp_path):
    good = finish_with_model(make(tmp_path))
    path, note = resolve_link(tmp_path / "sft" / "tiny-latest" / "model")
    assert path == tmp_path / "sft" / "tiny-latest" / "model"
    assert note.startswith(f"{tmp_path / 'sft' / 'tiny-latest'} → {good.path.name} (ok, ")
    killed = make(tmp_path / "other")
    killed.update_meta(pid=_dead_pid(), process_start="1")
    _, note = resolve_link(tmp_path / "other" / "sft" / "tiny-latest")
    assert "does not exist yet" in note and "was killed" in note
    assert f"pixelctl sft --resume {killed.path}" in note


def test_kill_point_stops_the_process_at_the_chosen_step():
    code = "from pixelctl.rundir import kill_point\nfor s in range(1, 9):\n    print(s, flush=True)\n    kill_point(s)\n"
    env = {**os.environ, "PIXELCTL_TEST_KILL_AT_STEP": "3:KILL"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == -9 and out.stdout.split() == ["1", "2", "3"]
    kill_point(10**9)  # unset: nothing happens


def test_resume_refuses_other_stage_and_non_runs(tmp_path):
    run = make(tmp_path)
    with pytest.raises(RunDirError, match="is a 'sft' run; resume it with `pixelctl sft"):
        RunDir.resume(run.path, "rl")
    with pytest.raises(RunDirError, match="not a pixelctl run directory"):
        RunDir.resume(tmp_path, "sft")


def test_torn_last_metrics_line_is_skipped(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert [r["a"] for r in iter_jsonl(p)] == [1, 2]
    p.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(json.JSONDecodeError, match=r"m\.jsonl, line 2: Expecting value"):
        list(iter_jsonl(p))  # corruption in the middle is not silently skipped


def test_jsonl_rows_numbers_lines_and_splits_only_at_newlines(tmp_path):
    """U+2028 (and U+0085, U+001C …) stay raw inside strings under `ensure_ascii=False`, as
    eval's samples.jsonl writes them; `str.splitlines` would cut the record there."""
    p = tmp_path / "r.jsonl"
    texts = ["a\u2028b", "c\x85d", "e\x1cf"]
    p.write_text(
        "\n".join(json.dumps({"t": t}, ensure_ascii=False) for t in texts) + "\n\n{bad\n[1]\r\n{",
        encoding="utf-8",
    )
    rows = jsonl_rows(p)
    assert [n for n, _ in rows] == [1, 2, 3, 5, 6, 7]
    assert [r["t"] for _, r in rows[:3]] == texts
    assert isinstance(rows[3][1], json.JSONDecodeError) and rows[4][1] == [1]
    assert isinstance(rows[5][1], json.JSONDecodeError)  # kept: the caller decides
    assert [n for n, _ in jsonl_rows(p, torn_tail=True)] == [1, 2, 3, 5, 6]
    assert [r["t"] for r in iter_jsonl(p.with_name("none.jsonl"))] == []
