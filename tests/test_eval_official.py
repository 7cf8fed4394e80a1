"""Eval against the official scripts: MVBench bounds and frame cache, TallyQA's complex rule,
one rule for a truncated box, and paper_compat's comma rule (issue 14, items 4-8).

Each test here failed on the code before the fix; the comments say what it used to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pixelctl.config import load_recipe
from pixelctl.evaluation.loaders import QueryError, load_source
from pixelctl.evaluation.loaders.mvbench import BOUND_TASKS, frame_indices
from pixelctl.grading import grade, grade_choice
from pixelctl.grading.extract import extract_answer, last_boxed
from pixelctl.grading.paper_compat import reference_match
from pixelctl.stages import eval as eval_stage
from tests.helpers import eval_fixtures as fx

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny_cpu.yaml"


def _grey_index(path: str) -> int:
    img = Image.open(path).convert("L")
    return round(sum(img.tobytes()) / (img.width * img.height) / 8)  # frame i is grey 8·i


def _mvbench(root: Path, tasks: dict[str, list[dict]]) -> Path:
    fx.video(root / "video" / "star" / "Charades_v1_480" / "ZS9XR.mp4")  # 32 frames, 10 fps
    fx.video(root / "video" / "perception" / "videos" / "ball.mp4")
    (root / "json").mkdir(parents=True, exist_ok=True)
    for task, items in tasks.items():
        (root / "json" / f"{task}.json").write_text(json.dumps(items))
    return root


def _item(video: str, start: float | None = None, end: float | None = None) -> dict:
    item = {"video": video, "question": "What first?", "candidates": ["a", "b"], "answer": "b"}
    if start is not None:
        item |= {"start": start, "end": end}
    return item


# ----------------------------------------------------------------------------- item 5
def test_the_official_task_list_of_bounded_clips():
    # Ask-Anything video_chat2/mvbench.ipynb, data_list: the entries whose 4th field is True
    assert {
        "action_sequence",
        "action_prediction",
        "object_interaction",
        "action_localization",
        "episodic_reasoning",
    } == BOUND_TASKS


def test_bounds_apply_only_to_the_flagged_tasks(tmp_path: Path) -> None:
    # object_shuffle is not flagged: the official code reads the whole video even though the
    # record has start/end (pixelctl used to clip whenever a record had them)
    root = _mvbench(tmp_path, {"object_shuffle": [_item("ball.mp4", 1.0, 2.0)]})
    [q] = load_source("mvbench", root, "official")
    assert [_grey_index(p) for p in q.images] == frame_indices(None, 10.0, 31)
    assert Path(q.images[0]).parent.name == "ball"


def test_a_flagged_task_without_bounds_is_an_error(tmp_path: Path) -> None:
    root = _mvbench(tmp_path, {"action_sequence": [_item("ZS9XR.mp4")]})
    with pytest.raises(QueryError, match=r"action_sequence clips are cut to \[start, end\]"):
        load_source("mvbench", root, "official")


# ----------------------------------------------------------------------------- item 4
def test_two_questions_on_one_video_with_other_bounds_get_their_own_frames(tmp_path: Path) -> None:
    items = [_item("ZS9XR.mp4", 0.0, 1.5), _item("ZS9XR.mp4", 1.5, 3.1)]
    root = _mvbench(tmp_path, {"action_sequence": items})
    first, second = load_source("mvbench", root, "official")
    # the cache used to be keyed by task and video name: the second got the first's frames
    assert [_grey_index(p) for p in first.images] == frame_indices((0.0, 1.5), 10.0, 31)
    assert [_grey_index(p) for p in second.images] == frame_indices((1.5, 3.1), 10.0, 31)
    assert first.images != second.images
    folders = {Path(q.images[0]).parent.name for q in (first, second)}
    assert folders == {"ZS9XR@0.0-1.5", "ZS9XR@1.5-3.1"}
    # and a second run reads both from the cache, each its own
    (root / "video" / "star" / "Charades_v1_480" / "ZS9XR.mp4").unlink()
    again = load_source("mvbench", root, "official")
    assert [q.images for q in again] == [first.images, second.images]


# ----------------------------------------------------------------------------- item 6
@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("\\boxed{B", None),  # short: it used to be taken as the bare answer "B"
        ("The answer is \\boxed{B", None),
        ("\\boxed{A} on second thought \\boxed{B", "A"),
        ("Answer: C\nchecking once more \\boxed{B", "C"),
        ("\\boxed{x \\boxed{A}", None),  # the outer box never closes
        ("\\boxed{B}", "B"),
    ],
)
def test_a_truncated_box_is_no_answer(text, span):
    assert extract_answer(text) == span


def test_a_truncated_box_scores_wrong_in_every_grader():
    assert grade_choice("\\boxed{B", "B", ["cat", "dog"]) == 0.0  # was 1.0
    assert grade("tallyqa", "\\boxed{3", "3") == 0.0
    assert grade("infovqa", "\\boxed{45%", ["45%"]) == 0.0
    assert last_boxed("\\boxed{A} and \\boxed{B") == "A"


# ----------------------------------------------------------------------------- item 7
def _tallyqa(root: Path) -> Path:
    fx.image(root / "VG_100K" / "1.jpg")
    rows = [
        # (issimple, data_source): simple imported, complex imported, complex AMT, "simple" AMT
        (10, True, "imported_genome"),
        (11, False, "imported_genome"),
        (12, False, "amt"),
        (13, True, "amt"),
    ]
    items = [
        {"image": "VG_100K/1.jpg", "question": "How many?", "answer": 2, "question_id": qid,
         "issimple": simple, "data_source": source}
        for qid, simple, source in rows
    ]  # fmt: skip
    (root / "test.json").write_text(json.dumps(items))
    return root


def test_tallyqa_complex_by_either_rule(tmp_path: Path) -> None:
    root = _tallyqa(tmp_path)
    by_flag = load_source("tallyqa", root, "official")
    assert [q.qid for q in by_flag] == ["tallyqa-11", "tallyqa-12"]
    by_source = load_source("tallyqa", root, "official", complex_rule="amt")
    assert [q.qid for q in by_source] == ["tallyqa-12", "tallyqa-13"]
    with pytest.raises(QueryError, match="unknown complex_rule"):
        load_source("tallyqa", root, "official", complex_rule="crowd")


def test_the_recipe_chooses_the_rule_and_metrics_record_it(tmp_path: Path) -> None:
    root = _tallyqa(tmp_path)
    source = f"eval.benchmarks=[{{name: tallyqa, path: {root}, layout: official}}]"
    loaded = load_recipe(RECIPE, [source, "eval.tallyqa.complex_rule=amt"])
    assert eval_stage.tallyqa_rule(loaded.recipe.eval) == "amt"
    got = eval_stage._load(loaded)
    queries = got[0] if isinstance(got, tuple) else got  # (queries, rejects) in newer stages
    assert [q.qid for q in queries] == ["tallyqa-12", "tallyqa-13"]
    default = load_recipe(RECIPE, [source])
    assert eval_stage.tallyqa_rule(default.recipe.eval) == "issimple"
    authors = load_recipe(RECIPE, [f"eval.benchmarks=[{{name: tallyqa, path: {root}}}]"])
    assert eval_stage.tallyqa_rule(authors.recipe.eval) == "authors"  # the file's own subset
    with pytest.raises(Exception, match="complex_rule"):
        load_recipe(RECIPE, [source, "eval.tallyqa.complex_rule=crowd"])


# ----------------------------------------------------------------------------- item 8
@pytest.mark.parametrize(
    ("response", "gold", "score"),
    [
        # a real multi-span answer: pieces in any order, anywhere after the last box
        ("\\boxed{the siege of krishnapur and troubles}", "troubles, the siege of krishnapur", 1),
        ("\\boxed{troubles}", "troubles, the siege of krishnapur", 0),
        (
            "\\boxed{troubles}. I first thought of the siege of krishnapur.",
            "troubles, the siege of krishnapur",
            1,
        ),
        # ... and every other answer that happens to hold a comma, substring by substring
        (
            "\\boxed{not troubles, nor the siege of krishnapur}",
            "troubles, the siege of krishnapur",
            1,
        ),
        ("\\boxed{washington state, not d.c.}", "washington, d.c.", 1),
        ("\\boxed{only on weekends, yes}", "yes, only on weekends", 1),
        ("\\boxed{12345}", "1,234", 1),  # a thousands separator: "1" and "234" are in "12345"
        ("\\boxed{fewer than 5, more than 2}", "2, 5", 1),
        ("\\boxed{washington}", "washington, d.c.", 0),
    ],
)
def test_paper_compat_comma_rule_hits_any_answer_with_a_comma(response, gold, score):
    assert reference_match(response, [gold]) == score


def test_the_comma_rule_is_documented_with_its_examples():
    from pixelctl.grading import paper_compat

    docs = (Path(__file__).resolve().parents[1] / "docs" / "eval.md").read_text()
    for text in (paper_compat.__doc__ or "", docs):
        for example in ("troubles, the siege of", "washington, d.c.", "1,234", "12345"):
            assert example in text
