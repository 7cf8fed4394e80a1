"""Benchmark loaders on fixtures written in exactly the official and the authors' layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pixelctl.evaluation.loaders import QueryError, load_source
from pixelctl.evaluation.loaders.authors import benchmark_of
from pixelctl.evaluation.loaders.mvbench import frame_indices
from tests.helpers import eval_fixtures as fx


def _grey_index(path: str) -> float:
    img = Image.open(path).convert("L")
    return sum(img.tobytes()) / (img.width * img.height) / 8  # fixtures: frame i is grey 8·i


# ----------------------------------------------------------------------------- V*
def test_vstar_keeps_the_shuffled_labels_and_options(tmp_path: Path) -> None:
    qs = load_source("vstar", fx.vstar(tmp_path), "official")
    assert [q.qid for q in qs] == ["vstar-0", "vstar-1"]
    assert qs[0].answer == "B" and qs[0].options == ("blue", "red", "green", "white")
    assert qs[0].question == (
        "What is the color of the bag?\n(A) blue\n(B) red\n(C) green\n(D) white"
    )  # the direct-answer instruction is dropped; the boxed guideline is added by the prompt
    assert qs[1].answer == "A" and qs[1].category == "relative_position"
    assert qs[0].images == (str((tmp_path / "direct_attributes" / "sa_1.jpg").resolve()),)


def test_vstar_label_outside_the_options_names_file_and_line(tmp_path: Path) -> None:
    root = fx.vstar(tmp_path)
    lines = (root / "test_questions.jsonl").read_text().splitlines()
    bad = json.loads(lines[1]) | {"label": "D"}
    (root / "test_questions.jsonl").write_text(lines[0] + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(QueryError, match=r"test_questions\.jsonl, record line 2: label 'D'"):
        load_source("vstar", root, "official")


# ----------------------------------------------------------------------------- TallyQA
def test_tallyqa_keeps_only_complex_questions(tmp_path: Path) -> None:
    qs = load_source("tallyqa", fx.tallyqa(tmp_path), "official")
    assert [(q.qid, q.answer) for q in qs] == [("tallyqa-11", "3"), ("tallyqa-12", "0")]
    assert [q.category for q in qs] == ["imported_genome", "amt"]


def test_tallyqa_missing_image_names_the_record(tmp_path: Path) -> None:
    root = fx.tallyqa(tmp_path)
    (root / "val2014" / "COCO_val2014_2.jpg").unlink()
    with pytest.raises(QueryError, match=r"test\.json, record item 2: image .* does not exist"):
        load_source("tallyqa", root, "official")


def test_limit_takes_the_first_items(tmp_path: Path) -> None:
    qs = load_source("tallyqa", fx.tallyqa(tmp_path), "official", limit=1)
    assert [q.qid for q in qs] == ["tallyqa-11"]


# ----------------------------------------------------------------------------- InfoVQA
def test_infovqa_reads_answer_lists(tmp_path: Path) -> None:
    qs = load_source("infovqa", fx.infovqa(tmp_path), "official")
    assert [q.qid for q in qs] == ["infovqa-65718", "infovqa-65719"]
    assert qs[0].answer == ["45%", "45"] and qs[0].category == "single span"
    assert qs[1].images[0].endswith("infographicsvqa_images/37314.jpeg")


def test_infovqa_record_without_answers_is_named(tmp_path: Path) -> None:
    root = fx.infovqa(tmp_path)
    f = root / "infographicsVQA_val_v1.0_withQT.json"
    blob = json.loads(f.read_text())
    del blob["data"][1]["answers"]
    f.write_text(json.dumps(blob))
    with pytest.raises(
        QueryError, match=r"withQT\.json, record data\[1\]: missing field 'answers'"
    ):
        load_source("infovqa", root, "official")


# ----------------------------------------------------------------------------- MVBench
def test_official_frame_rule_worked_examples() -> None:
    # whole clip, fps 1, frames 0..9, 4 segments of 2.25: int(1.125 + round(2.25 i))
    assert frame_indices(None, 1.0, 9, n=4) == [1, 3, 5, 8]
    # clip [1 s, 3 s] at 10 fps: frames 10..30, segments of 5 → midpoints 12.5, 17.5, …
    assert frame_indices((1.0, 3.0), 10.0, 100, n=4) == [12, 17, 22, 27]
    # frame folders count from 1
    assert frame_indices(None, 3.0, 8, first=1, n=4)[0] == 1


def test_mvbench_candidates_become_letters_and_frames_follow_the_rule(tmp_path: Path) -> None:
    qs = {q.category: q for q in load_source("mvbench", fx.mvbench(tmp_path), "official")}
    assert set(qs) == {
        "action_sequence",
        "episodic_reasoning",
        "fine_grained_pose",
        "object_shuffle",
    }
    seq = qs["action_sequence"]
    assert (
        seq.is_video and seq.answer == "B" and seq.options == ("Sat on the bed.", "Took the towel.")
    )
    assert seq.question == (
        "Question: What did the person do first?\nOptions:\n(A) Sat on the bed.\n(B) Took the towel."
    )
    # mp4: 32 frames at 10 fps, bound [1 s, 3 s] → start 10, end 30, 16 segments of 1.25
    want = frame_indices((1.0, 3.0), 10.0, 31)
    assert want == [10, 11, 12, 14, 15, 16, 18, 19, 20, 21, 22, 24, 25, 26, 28, 29]
    assert [round(_grey_index(p)) for p in seq.images] == want
    # frame folder (00001.jpg…00030.jpg, fps 3, from 1), bound [0 s, 8 s] → frames 1..24
    ep = qs["episodic_reasoning"]
    assert [round(_grey_index(p)) for p in ep.images] == frame_indices((0.0, 8.0), 3.0, 30, 1)
    # GIF: 20 frames at the official 25 fps, no bound
    gif = qs["fine_grained_pose"]
    assert [round(_grey_index(p)) for p in gif.images] == frame_indices(None, 25.0, 19)
    # pre-extracted frames are used as they are, in name order
    shuffle = qs["object_shuffle"]
    assert [round(_grey_index(p)) for p in shuffle.images] == list(range(16))
    assert shuffle.answer == "C"


def test_mvbench_decoded_frames_are_cached_for_the_next_run(tmp_path: Path) -> None:
    root = fx.mvbench(tmp_path)
    first = load_source("mvbench", root, "official", limit=1)[0]
    (root / "video" / "star" / "Charades_v1_480" / "ZS9XR.mp4").unlink()
    again = load_source("mvbench", root, "official", limit=1)[0]
    assert again.images == first.images
    # action_sequence is cut to [start, end]: the bound is part of the cache key
    assert Path(first.images[0]).parent == root / "frames" / "action_sequence" / "ZS9XR@1.0-3.0"


def test_mvbench_answer_not_a_candidate_is_named(tmp_path: Path) -> None:
    root = fx.mvbench(tmp_path)
    f = root / "json" / "fine_grained_pose.json"
    f.write_text(json.dumps([{"video": "pose.gif", "question": "?", "candidates": ["a", "b"],
                              "answer": "c"}]))  # fmt: skip
    with pytest.raises(QueryError, match=r"fine_grained_pose\.json, record item 0: answer 'c'"):
        load_source("mvbench", root, "official")


# ----------------------------------------------------------------------------- authors
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_authors_layout_filters_by_qid_prefix(tmp_path: Path, fmt: str) -> None:
    root = fx.authors(tmp_path, fmt)
    [v] = load_source("vstar", root)
    [info] = load_source("infovqa", root)
    [mv] = load_source("mvbench", root)
    assert v.qid == "vstar-0" and v.images == (str((root / "images" / "a.jpg").resolve()),)
    assert info.answer == ["12", "twelve"] and not info.is_video
    assert mv.is_video and len(mv.images) == 4 and mv.benchmark == "mvbench"
    with pytest.raises(QueryError, match=r"no 'tallyqa' items \(qid prefixes found: "):
        load_source("tallyqa", root)


def test_authors_bad_record_names_file_and_line(tmp_path: Path) -> None:
    root = fx.authors(tmp_path)
    with (root / "eval.jsonl").open("a") as f:
        f.write(json.dumps({"qid": "vstar-9", "question": "q", "image": "images/a.jpg",
                            "answer": "A", "is_video": "no"}) + "\n")  # fmt: skip
    with pytest.raises(QueryError, match=r"eval\.jsonl, record line 4: field 'is_video'"):
        load_source("vstar", root)


def test_authors_duplicate_qid_is_an_error(tmp_path: Path) -> None:
    root = fx.authors(tmp_path)
    first = (root / "eval.jsonl").read_text().splitlines()[0]
    with (root / "eval.jsonl").open("a") as f:
        f.write(first + "\n")
    with pytest.raises(QueryError, match="duplicate qid 'vstar-0'"):
        load_source("vstar", root)


def test_benchmark_prefix_aliases() -> None:
    assert benchmark_of("InfographicsVQA-12-x") == "infovqa"
    assert benchmark_of("vstar-3") == "vstar"
    assert benchmark_of("procedural-eval-00001") == "procedural"


def test_procedural_has_no_official_layout(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="no official layout"):
        load_source("procedural", tmp_path, "official")


@given(
    fps=st.floats(1.0, 60.0),
    last=st.integers(16, 5000),
    bound=st.one_of(st.none(), st.tuples(st.floats(0, 50), st.floats(0.1, 50))),
)
def test_frame_rule_stays_inside_the_clip_and_never_goes_back(fps, last, bound) -> None:
    lo, hi = 0, last
    if bound is not None:
        lo, hi = max(0, round(bound[0] * fps)), min(round(bound[1] * fps), last)
    if hi - lo < 16:  # the official rule assumes a clip of at least 16 frames inside the video
        bound, lo, hi = None, 0, last
    idx = frame_indices(bound, fps, last)
    assert len(idx) == 16 and idx == sorted(idx)
    assert lo <= idx[0] and idx[-1] <= hi
