"""RL data → OpenRLHF prompt dataset: the authors' parquet layout and our JSONL, validated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pixelctl.agent import Query
from pixelctl.engines.openrlhf.data import (
    VIDEO_FRAMES,
    convert,
    label_json,
    max_images_per_prompt,
    parse_label,
    render_prompt,
)

PAD = "<|vision_start|><|image_pad|><|vision_end|>"


def write_images(folder: Path, names: list[str]) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), "white").save(folder / name)


@pytest.fixture()
def parquet(tmp_path) -> Path:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    write_images(tmp_path, ["img/a.png", *[f"vid/{i}.png" for i in range(3)]])
    rows = [
        {
            "qid": "vstar-1",
            "question": "What color?",
            "image": ["img/a.png"],
            "answer": "red",
            "is_video": False,
        },
        {
            "qid": "mv-2",
            "question": "What happens?",
            "image": [f"vid/{i}.png" for i in range(3)],
            "answer": ["A", "a"],
            "is_video": True,
        },
        {
            "qid": "gone-3",
            "question": "Q",
            "image": ["img/missing.png"],
            "answer": "x",
            "is_video": False,
        },
        {
            "qid": "empty-4",
            "question": "Q",
            "image": ["img/a.png"],
            "answer": "",
            "is_video": False,
        },
        {
            "qid": "many-5",
            "question": "Q",
            "image": ["img/a.png"] * 17,
            "answer": "x",
            "is_video": False,
        },
    ]
    table = pa.Table.from_pylist(
        [
            {
                **r,
                "answer": json.dumps(r["answer"]) if isinstance(r["answer"], list) else r["answer"],
            }
            for r in rows
        ]
    )
    path = tmp_path / "train.parquet"
    pq.write_table(table, path)
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_authors_parquet_layout_converts_and_reports_every_reject(parquet, tmp_path):
    out = tmp_path / "run" / "data" / "prompts.jsonl"
    report = convert([parquet], out, max_images=16)
    assert (report.written, report.images, report.videos) == (2, 1, 1)
    reasons = {r.id: r.reason for r in report.rejects}
    assert set(reasons) == {"gone-3", "empty-4", "many-5"}
    assert reasons["gone-3"] == f"image {tmp_path / 'img' / 'missing.png'} does not exist"
    assert reasons["empty-4"] == "field 'answer' is empty"
    assert reasons["many-5"] == "17 images exceed executor.max_images = 16"
    saved = json.loads(out.with_name("prompts.jsonl.report.json").read_text())
    assert saved["written"] == 2 and len(saved["rejects"]) == 3

    image, video = read_jsonl(out)
    assert image["images"] == [str(tmp_path / "img/a.png")]  # absolute: workers read by path
    assert image["prompt"].startswith("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools")
    assert image["prompt"].count(PAD) == 1
    assert image["prompt"].endswith(
        f"<|im_start|>user\n{PAD}What color?\n\nGuidelines: Understand the given visual "
        "information and the user query. Determine if it is beneficial to employ the given "
        "visual operations (tools). For a video, we can look closer by `select_frames`. For an "
        "image, we can look closer by `crop_image`. Reason with the visual information step by "
        "step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert video["prompt"].count(PAD) == 3  # frames go in as images
    label = parse_label(video["label"])
    assert label.is_video and label.images == tuple(video["images"]) and label.qid == "mv-2"


def test_synth_run_dir_and_notool_mode(tmp_path):
    write_images(tmp_path, ["a.png"])
    run = tmp_path / "synth-run"
    run.mkdir()
    rec = {
        "qid": "p-1",
        "question": "Count",
        "image": ["../a.png"],
        "answer": "3",
        "is_video": False,
    }
    (run / "rl.jsonl").write_text(json.dumps(rec) + "\n")
    out = tmp_path / "prompts.jsonl"
    report = convert([run], out, mode="notool")
    assert report.written == 1 and not report.rejects
    (record,) = read_jsonl(out)
    assert "# Tools" not in record["prompt"]
    assert "Please think step by step" in record["prompt"]


def test_video_frame_limit_and_vllm_image_cap(tmp_path):
    write_images(tmp_path, [f"f{i}.png" for i in range(VIDEO_FRAMES + 1)])
    rec = {
        "qid": "v-1",
        "question": "Q",
        "image": [f"f{i}.png" for i in range(VIDEO_FRAMES + 1)],
        "answer": "A",
        "is_video": True,
    }
    src = tmp_path / "rl.jsonl"
    src.write_text(json.dumps(rec) + "\n")
    report = convert([src], tmp_path / "out.jsonl")
    assert report.written == 0
    assert report.rejects[0].reason == "a video needs 1..16 frames, got 17"
    assert max_images_per_prompt(16) == 31  # 16 frames + 15 returned images


def test_label_round_trip_and_foreign_labels():
    q = Query("q-1", "Q?", images=("/d/a.png",), answer=["1", "one"])
    assert parse_label(label_json(q)) == q
    with pytest.raises(ValueError, match="not a pixelctl label"):
        parse_label("42")
    assert render_prompt(q).count(PAD) == 1


def test_over_long_prompts_are_refused_at_conversion_by_visual_token_arithmetic(tmp_path):
    """OpenRLHF raises (and ends the job) on a first prompt over max_len − max_new_tokens; we
    count text + visual tokens (smart_resize at the train bounds) and refuse it up front."""
    from pixelctl.config import load_recipe
    from pixelctl.engines.openrlhf.data import PromptBudget

    recipe = load_recipe(Path(__file__).parent.parent / "recipes/7b_a800.yaml").recipe
    budget = PromptBudget.from_recipe(recipe, count_text=lambda text: len(text) // 4)
    Image.new("RGB", (640, 480)).save(tmp_path / "small.png")  # 23 × 17 = 391 tokens
    Image.new("RGB", (3000, 3000)).save(tmp_path / "big.png")  # capped: 1,568,000 px
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    assert budget.visual_tokens(640, 480, video=False) == (476 // 28) * (644 // 28)
    assert budget.visual_tokens(3000, 3000, video=False) == 44 * 44  # 1232² ≤ 1,568,000
    rows = [
        {"qid": "ok", "question": "Q", "image": ["small.png"], "answer": "1", "is_video": False},
        {"qid": "long", "question": "Q", "image": ["big.png"], "answer": "1", "is_video": False},
        {"qid": "bad", "question": "Q", "image": ["broken.png"], "answer": "1", "is_video": False},
    ]
    data = tmp_path / "rl.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = convert([data], tmp_path / "out.jsonl", budget=budget)
    assert report.written == 1
    reasons = {r.id: r.reason for r in report.rejects}
    assert reasons["long"].startswith("the first prompt takes ")
    assert "over rl.rollout.max_prompt_tokens = 2048" in reasons["long"]
    assert "unreadable" in reasons["bad"]  # refused before any worker sees it


def test_trimming_drops_the_last_prompts_and_lists_them(tmp_path):
    write_images(tmp_path, ["a.png"])
    rows = [
        {"qid": f"q{i}", "question": "Q", "image": ["a.png"], "answer": "1", "is_video": False}
        for i in range(7)
    ]
    data = tmp_path / "rl.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = convert([data], tmp_path / "out.jsonl", trim=lambda n: n % 4)
    assert [r["qid"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["q0", "q1", "q2", "q3"]
    assert [r.id for r in report.rejects] == ["q4", "q5", "q6"]
    assert all("actor ranks" in r.reason for r in report.rejects)
