"""The one reject rule (pixelctl/rejects.py) in every stage: bad data is listed, counted and
skipped up front; a sample that still fails at run time is a counted skip; too many rejects
refuse the run and name the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from pixelctl import rejects
from pixelctl.config import load_recipe
from pixelctl.errors import StageError
from pixelctl.queries import load_queries


def png(path: Path, size=(64, 48)) -> Path:
    Image.new("RGB", size, (200, 10, 10)).save(path)
    return path


def corrupt(path: Path) -> Path:
    path.write_bytes(b"this is not an image at all\n" * 4)
    return path


def truncated(path: Path) -> Path:
    """A PNG whose header reads fine but whose pixels are cut off (fails only when decoded)."""
    Image.effect_noise((256, 256), 64).convert("RGB").save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def row(qid, image="ok.png", answer="red", **kw):
    return {"qid": qid, "question": "Which colour?", "image": [image], "answer": answer, **kw}


# ----------------------------------------------------------------------------- the rule
def test_image_problem_reads_headers(tmp_path):
    assert rejects.image_problem(png(tmp_path / "ok.png")) is None
    assert "does not exist" in rejects.image_problem(tmp_path / "missing.png")
    assert "is unreadable (UnidentifiedImageError" in rejects.image_problem(
        corrupt(tmp_path / "bad.png")
    )
    # the header is intact: only decoding finds it, which is what the run-time skip is for
    assert rejects.image_problem(truncated(tmp_path / "cut.png")) is None
    assert rejects.check_images([], is_video=True).startswith("no image")
    assert rejects.check_images([tmp_path / "ok.png", tmp_path / "bad.png"], True).startswith(
        "video frame: image"
    )


def test_rejects_file_summary_and_threshold(tmp_path):
    bad = [
        rejects.Reject("d.jsonl", 3, "a", "image x.png is unreadable (boom)"),
        rejects.Reject("d.jsonl", 7, "b", "missing field 'answer' (has: [])"),
    ]
    path = rejects.write(tmp_path / rejects.REJECTS_FILE, bad)
    rejects.append(path, rejects.Reject("d.jsonl", None, "c", "round 1: OSError", "run"))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0] == {
        "file": "d.jsonl",
        "line": 3,
        "id": "a",
        "reason": "image x.png is unreadable (boom)",
        "phase": "check",
    }
    assert [x["phase"] for x in lines] == ["check", "check", "run"]
    rejects.write(path, bad[:1])  # a resume rewrites the up-front part, keeps run-time skips
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["a", "c"]
    assert rejects.summary("rl data", 38, bad, path) == (
        "rl data: 38 kept, 2 rejected (image is unreadable: 1, missing field 'answer': 1); "
        f"every reject with file, line and reason in {path}"
    )
    rejects.enforce("rl data", 38, bad, 0.05, path)  # 2/40 = 5%: not over
    with pytest.raises(StageError, match=r"2 of 39 records rejected \(5\.1%") as exc:
        rejects.enforce("rl data", 37, bad, 0.05, path)
    assert str(path) in str(exc.value) and "max_reject_fraction" in str(exc.value)


def test_max_reject_fraction_is_a_recipe_key():
    assert load_recipe(None, raw={}).recipe.max_reject_fraction == 0.05
    assert load_recipe(None, ["max_reject_fraction=0.5"], raw={}).recipe.max_reject_fraction == 0.5


# ----------------------------------------------------------------------------- rl
def test_rl_data_rejects_a_corrupt_image_up_front(tmp_path):
    png(tmp_path / "ok.png")
    corrupt(tmp_path / "bad.png")
    data = write_jsonl(tmp_path / "rl.jsonl", [row("p-1"), row("p-2", image="bad.png")])
    qs = load_queries([data])
    assert [q.qid for q in qs.queries] == ["p-1"]
    [r] = qs.rejects
    assert (r.line, r.id) == (2, "p-2") and "is unreadable" in r.reason


@pytest.mark.slow
def test_rl_skips_and_counts_a_prompt_whose_image_fails_to_decode(tiny_model_dir, tmp_path):
    from pixelctl.agent import Generation
    from pixelctl.engines.local.loop import LocalEngine
    from pixelctl.rundir import RunDir

    png(tmp_path / "ok.png")
    truncated(tmp_path / "cut.png")
    data = write_jsonl(tmp_path / "rl.jsonl", [row("p-1"), row("p-2", image="cut.png")])
    qs = load_queries([data])
    assert len(qs.queries) == 2  # the header is fine: only decoding finds it
    raw = {
        "model": {"name_or_path": str(tiny_model_dir), "dtype": "float32"},
        "rl": {
            "data": [str(data)],
            "rollout": {"n_samples": 2, "prompts_per_round": 2, "max_new_tokens": 8},
            "optim": {"batch_size": 2, "micro_batch_size": 2},
        },
        "launch": {"device": "cpu"},
    }
    recipe = load_recipe(None, raw=raw).recipe
    run = RunDir.create(tmp_path / "runs", "rl", "t", {})
    engine = LocalEngine(recipe, run, qs, str(tiny_model_dir))
    engine.generate = lambda convs, samplings: [Generation("\\boxed{red}") for _ in convs]
    outcomes, _ = engine.rollouts(0)
    assert {o.query.qid for o in outcomes} == {"p-1"} and len(outcomes) == 2
    assert engine.skipped == 1
    [skip] = [json.loads(x) for x in (run.path / "rejects.jsonl").read_text().splitlines()]
    assert (skip["id"], skip["phase"]) == ("p-2", "run") and skip["reason"].startswith("round 1: ")


# ----------------------------------------------------------------------------- eval
def eval_recipe(tmp_path, *sources, **top):
    raw = {
        "model": {"name_or_path": "builtin:tiny-qwen2.5-vl"},
        "eval": {"benchmarks": list(sources)},
        **top,
    }
    return load_recipe(None, raw=raw)


def test_eval_lists_every_bad_record_at_once_and_no_record_vanishes(tmp_path):
    from pixelctl.stages.eval import _load

    png(tmp_path / "ok.png")
    corrupt(tmp_path / "bad.png")
    data = write_jsonl(
        tmp_path / "eval.jsonl",
        [
            row("procedural-1"),
            "{not json",
            row("procedural-3", answer=""),
            row("procedural-4", image="missing.png"),
            row("procedural-5", image="bad.png"),
            row("proc-6"),  # a qid of no benchmark being evaluated: counted, not dropped
            row("procedural-7"),
            row("vstar-8"),  # another listed benchmark's row: left to that source
        ],
    )
    loaded = eval_recipe(
        tmp_path,
        {"name": "procedural", "path": str(data)},
        {"name": "vstar", "path": str(data)},
    )
    queries, bad = _load(loaded)
    assert [q.qid for q in queries] == ["procedural-1", "procedural-7", "vstar-8"]
    got = [(r.line, r.reason.split(" (")[0].split(":")[0]) for r in bad["procedural"]]
    assert got == [
        (2, "not valid JSON"),
        (3, "field 'answer' is empty"),
        (4, f"image {tmp_path / 'missing.png'} does not exist"),
        (5, f"image {tmp_path / 'bad.png'} is unreadable"),
        (6, "qid prefix 'proc' names no benchmark being evaluated"),
    ]
    assert bad["vstar"] == []  # the combined file's bad lines are counted once, not twice


def test_eval_prints_errors_and_rejects_beside_the_score(tmp_path):
    from pixelctl.rejects import Reject
    from pixelctl.stages.eval import problem_lines

    metrics = {"procedural": {"n": 7, "errors": 1, "rejected": 2}}
    records = [
        {"benchmark": "procedural", "qid": "procedural-2", "error": "ImageLoadError: truncated"},
        {"benchmark": "procedural", "qid": "procedural-3", "error": None},
    ]
    bad = {"procedural": [Reject("e.jsonl", 1, "x", "r"), Reject("e.jsonl", 2, "y", "r")]}
    assert problem_lines(metrics, records, bad, Path("RUN/rejects.jsonl")) == [
        "procedural: 1 error(s), scored wrong and counted in n (first: procedural-2: "
        "ImageLoadError: truncated); 2 record(s) rejected, not in n (see RUN/rejects.jsonl)"
    ]


def test_eval_refuses_to_start_over_the_reject_threshold(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pixelctl.cli.app import app

    png(tmp_path / "ok.png")
    rows = [row(f"procedural-{i}") for i in range(9)] + [row("procedural-9", image="nope.png")]
    data = write_jsonl(tmp_path / "eval.jsonl", rows)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        json.dumps(
            {
                "model": {"name_or_path": "builtin:tiny-qwen2.5-vl", "dtype": "float32"},
                "eval": {"benchmarks": [{"name": "procedural", "path": str(data)}]},
                "launch": {"device": "cpu", "runs_root": str(tmp_path / "runs")},
            }
        )
    )
    res = CliRunner().invoke(app, ["eval", str(recipe)])
    assert res.exit_code == 1, res.output
    assert "1 of 10 records rejected (10.0%, over max_reject_fraction=0.05)" in res.output
    [run] = (tmp_path / "runs" / "eval").iterdir()
    assert f"{run / 'rejects.jsonl'}" in res.output.replace("\n", "")
    assert not (tmp_path / "runs" / "eval" / "r-latest").exists()


# ----------------------------------------------------------------------------- synth
def test_synth_copies_training_images_instead_of_hard_linking(tmp_path):
    from pixelctl.synth.trajectories import _place

    src = png(tmp_path / "scene.png")
    dst = tmp_path / "images" / "scene.png"
    dst.parent.mkdir()
    _place(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    assert os.stat(src).st_ino != os.stat(dst).st_ino and os.stat(src).st_nlink == 1
    dst.write_bytes(b"edited")
    assert src.read_bytes() != b"edited"  # editing the dataset never edits the scene
    os.unlink(dst)
    os.link(src, dst)  # a dataset from an older version (hard-linked): replaced by a copy
    _place(src, dst)
    assert os.stat(src).st_ino != os.stat(dst).st_ino
