"""The synthesis run with the offline template writer: shapes, re-executed observations, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelctl.executor import Session, ToolCall
from pixelctl.synth.pipeline import run_synth
from pixelctl.synth.trajectories import seed_folder
from tests.test_synth_support import read_jsonl, small_recipe, write_image, write_jsonl


class Killed(Exception):
    pass


def _kill_after(n: int):
    def hook(ev: dict) -> None:
        if ev["written"] >= n:
            raise Killed

    return hook


def _files(root: Path) -> dict[str, bytes]:
    """Every output file; stats.json without its `this_run` part (which describes one leg)."""
    files = {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "cache" not in p.parts
    }
    stats = json.loads(files.pop("stats.json"))
    stats.pop("this_run")
    files["stats.json"] = json.dumps(stats).encode()
    return files


def _paths(record: dict) -> list[str]:
    out = []
    for msg in record["message_list"]:
        for item in msg["content"]:
            if item["type"] == "image":
                out.append(item["image"])
            elif item["type"] == "video":
                out.extend(item["video"])
    return out


@pytest.fixture(scope="module")
def template_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "out"
    stats = run_synth(small_recipe(out.parent), out)
    return out, stats


def test_mix_counts_and_record_shapes(template_run) -> None:
    out, stats = template_run
    recs = read_jsonl(out / "sft.jsonl")
    assert stats["by_kind"] == {"self_correction": 3, "single_pass": 3, "text_only": 2}
    assert len({r["id"] for r in recs}) == 8 == stats["records"]
    roles = {
        "single_pass": ["system", "user", "assistant", "user", "assistant"],
        "self_correction": [
            "system",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant",
        ],
        "text_only": ["system", "user", "assistant"],
    }
    for r in recs:
        assert [m["role"] for m in r["message_list"]] == roles[r["kind"]]
        assert r["error_turns"] == ([2] if r["kind"] == "self_correction" else [])
        assert r["message_list"][-1]["content"][0]["text"].endswith(f"\\boxed{{{r['answer']}}}")
        assert (
            r["operations"] == {"single_pass": 1, "self_correction": 2, "text_only": 0}[r["kind"]]
        )
    assert stats["operations_per_trajectory"] == {
        "mean": 1.125,
        "histogram": {"0": 2, "1": 3, "2": 3},
    }


def test_the_marked_error_turn_is_the_missed_call(template_run) -> None:
    out, _ = template_run
    for r in read_jsonl(out / "sft.jsonl"):
        if r["kind"] != "self_correction":
            continue
        wrong = r["message_list"][2]["content"][0]["text"]
        right = r["message_list"][4]["content"][0]["text"]
        assert wrong.endswith("</tool_call>") and right.endswith("</tool_call>")
        wrong_box = json.loads(wrong.split("<tool_call>\n")[1].split("\n</tool_call>")[0])
        right_box = json.loads(right.split("<tool_call>\n")[1].split("\n</tool_call>")[0])
        assert wrong_box["arguments"]["bbox_2d"] != right_box["arguments"]["bbox_2d"]


def test_every_path_is_relative_and_exists(template_run) -> None:
    out, _ = template_run
    for r in read_jsonl(out / "sft.jsonl"):
        for p in _paths(r) + r["image"]:
            assert not p.startswith("/") and "\\" not in p and (out / p).is_file()


def test_observations_are_exactly_what_the_executor_returns(template_run) -> None:
    out, _ = template_run
    rec = next(r for r in read_jsonl(out / "sft.jsonl") if r["kind"] == "single_pass")
    call = json.loads(
        rec["message_list"][2]["content"][0]["text"]
        .split("<tool_call>\n")[1]
        .split("\n</tool_call>")[0]
    )
    settings = small_recipe(out).executor.settings("train")
    obs = Session(images=[out / rec["image"][0]], settings=settings).execute(
        ToolCall(call["name"], call["arguments"])
    )
    stored = rec["message_list"][3]["content"]
    assert stored[0]["text"] == obs.text
    saved = np.asarray(Image.open(out / stored[1]["image"]).convert("RGB"))
    assert np.array_equal(saved, np.asarray(obs.images[0]))


def test_rl_and_eval_files_use_the_authors_layout(template_run) -> None:
    out, stats = template_run
    rl = read_jsonl(out / "rl.jsonl")
    sft_ids = [r["id"] for r in read_jsonl(out / "sft.jsonl")]
    assert [r["qid"] for r in rl] == sft_ids
    assert set(rl[0]) == {"qid", "question", "image", "answer", "is_video", "options"}
    ev = read_jsonl(out / "eval.jsonl")
    assert len(ev) == 3 and all(e["qid"].startswith("procedural-eval-") for e in ev)
    assert not set(e["qid"] for e in ev) & set(sft_ids)
    assert stats["plan"]["procedural_legibility"]["zoom_helps"] is True


def test_killed_run_resumes_to_the_same_files(template_run, tmp_path: Path) -> None:
    full, _ = template_run
    out = tmp_path / "out"
    recipe = small_recipe(tmp_path)
    with pytest.raises(Killed):
        run_synth(recipe, out, on_progress=_kill_after(3), window=2)
    assert len(read_jsonl(out / "sft.jsonl")) == 3
    with (out / "sft.jsonl").open("a") as f:
        f.write('{"id": "torn-by-the-ki')  # a kill in the middle of a write
    stats = run_synth(recipe, out)
    assert stats["this_run"]["skipped"] == 3 and stats["this_run"]["written"] == 5
    assert _files(out) == _files(full)


def test_a_rerun_of_a_finished_run_writes_nothing(template_run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    recipe = small_recipe(tmp_path)
    run_synth(recipe, out)
    before = _files(out)
    stats = run_synth(recipe, out)
    assert stats["this_run"]["skipped"] == 8 and stats["this_run"]["written"] == 0
    assert _files(out) == before


def test_annotated_image_web_and_video_seeds(tmp_path: Path) -> None:
    img = write_image(tmp_path / "data" / "photo.jpg", (640, 480), "grey")
    page = write_image(tmp_path / "data" / "page.png", (300, 900), "white")
    frames = [write_image(tmp_path / "data" / "vid" / f"{i:02d}.png", (96, 64)) for i in range(6)]
    img_rows = [
        {
            "id": "sa/1",
            "image": str(img),
            "question": "What does the sign say?",
            "answer": "OPEN",
            "boxes": [{"bbox": [500, 40, 60, 30], "label": "sign"}],
        },
        {
            "id": "sa-bad",
            "image": str(img),
            "question": "Q",
            "answer": "A",
            "boxes": [{"bbox": [600, 40, 60, 30]}],
        },
    ]
    web_rows = [
        {
            "id": "web-1",
            "image": str(page),
            "question": "What share?",
            "answer": "42%",
            "box_format": "xywh_norm",
            "regions": [{"bbox": [0.1, 0.7, 0.5, 0.05], "text": "42% of users"}],
        }
    ]
    vid_rows = [
        {
            "id": "vid-1",
            "frames_dir": str(frames[0].parent),
            "key_frames": [1, 2],
            "question": "What happens?",
            "answer": "B",
            "options": ["A", "B"],
        }
    ]
    seeds = [
        {"path": str(write_jsonl(tmp_path / f"{k}.jsonl", rows)), "kind": k}
        for k, rows in (("image", img_rows), ("web", web_rows), ("video", vid_rows))
    ]
    recipe = small_recipe(
        tmp_path,
        synth={
            "seeds": seeds,
            "procedural": {"n_train": 0},
            "n_pixel_space": 3,
            "n_text_only": 0,
            "self_correction_ratio": 0.0,
        },
    )
    out = tmp_path / "out"
    stats = run_synth(recipe, out)
    recs = {r["id"]: r for r in read_jsonl(out / "sft.jsonl")}
    assert set(recs) == {"sa/1", "web-1", "vid-1"}
    assert stats["rejects"]["total"] == 1 and stats["by_source"] == {
        "image": 1,
        "video": 1,
        "web": 1,
    }
    assert read_jsonl(out / "rejects.jsonl")[0]["id"] == "sa-bad"
    assert recs["sa/1"]["image"] == [f"images/{seed_folder('sa/1')}/input.jpg"]
    video = recs["vid-1"]
    assert video["message_list"][1]["content"][0]["type"] == "video"
    assert len(video["message_list"][1]["content"][0]["video"]) == 6
    assert '"target_frames": [2, 3]' in video["message_list"][2]["content"][0]["text"]
    assert video["message_list"][3]["content"][0]["text"].startswith(
        "\nHere are the selected frames"
    )
    assert "42% of users" in recs["web-1"]["message_list"][-1]["content"][0]["text"]
    run_synth(recipe, out)  # a re-run records no reject twice
    assert len(read_jsonl(out / "rejects.jsonl")) == 1


def test_an_operation_the_executor_refuses_is_a_reexecute_reject(tmp_path: Path) -> None:
    """synth re-executes every planned operation; a refused one rejects the seed at stage
    `reexecute` (retried on resume), before any writer runs."""
    import asyncio

    from pixelctl.executor import ExecutorSettings
    from pixelctl.synth.plan import Assignment
    from pixelctl.synth.seeds import Region, Seed, SynthReject
    from pixelctl.synth.trajectories import build_record

    image = tmp_path / "in.png"
    Image.new("RGB", (40, 40), "white").save(image)
    cue = (Region((0.4, 0.4, 0.45, 0.45), "sign"),)  # a 2-px cue: the crop stays under 28 px
    seed = Seed("tiny", "image", "Q?", ("A",), image=image, regions=cue, file="s.jsonl", line=3)
    got = asyncio.run(
        build_record(Assignment(seed, "single_pass"), None, ExecutorSettings(), tmp_path, "vcot")
    )
    assert isinstance(got, SynthReject)
    assert (got.id, got.file, got.line, got.stage) == ("tiny", "s.jsonl", 3, "reexecute")
    assert got.reason.startswith("executor refused crop_image_normalized")
