"""Reading prompt records in the authors' layout: every reject named with file, line and reason."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pixelctl.queries import load_queries


@pytest.fixture
def folder(tmp_path):
    Image.new("RGB", (56, 56)).save(tmp_path / "a.png")
    (tmp_path / "frames").mkdir()
    for i in range(3):
        Image.new("RGB", (56, 56)).save(tmp_path / "frames" / f"{i}.png")
    return tmp_path


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_good_records_become_queries(folder):
    path = write(
        folder / "rl.jsonl",
        [
            {
                "qid": "vstar-1",
                "question": "Q?",
                "image": ["a.png"],
                "answer": "B",
                "is_video": False,
                "options": ["x", "y"],
                "category": "attr",
            },
            {
                "qid": "mvbench-2",
                "question": "V?",
                "image": [f"frames/{i}.png" for i in range(3)],
                "answer": ["A", "a"],
                "is_video": True,
            },
        ],
    )
    qs = load_queries([path])
    assert qs.rejects == []
    a, b = qs.queries
    assert (a.qid, a.benchmark, a.images, a.options, a.category) == (
        "vstar-1",
        "vstar",
        (str(folder / "a.png"),),
        ("x", "y"),
        "attr",
    )
    assert b.is_video and len(b.images) == 3 and b.answer == ["A", "a"] and b.benchmark == "mvbench"


def test_every_bad_record_is_reported(folder):
    path = write(
        folder / "rl.jsonl",
        [
            {"qid": "x-1", "question": "Q?", "image": ["missing.png"], "answer": "B"},
            {"qid": "x-2", "question": "Q?", "image": ["a.png"], "answer": ""},
            {"qid": "x-3", "question": "Q?", "image": ["a.png"], "answer": ["", " "]},
            "{not json",
            {"qid": "x-5", "question": "Q?", "image": ["a.png"], "answer": "ok"},
            {"qid": "x-5", "question": "again", "image": ["a.png"], "answer": "ok"},
            ["a list"],
        ],
    )
    qs = load_queries([path])
    assert [q.qid for q in qs.queries] == ["x-5"]
    got = [(r.line, r.id, r.reason.split(" (")[0]) for r in qs.rejects]
    assert got == [
        (1, "x-1", f"image {folder / 'missing.png'} does not exist"),
        (2, "x-2", "field 'answer' is empty"),
        (3, "x-3", "field 'answer' is empty"),
        (4, None, "not valid JSON"),
        (6, "x-5", "duplicate qid"),
        (7, None, "a record must be a JSON object"),
    ]
    assert str(qs.rejects[0]) == f"{path}:1: x-1: image {folder / 'missing.png'} does not exist"
    assert qs.summary() == "1 queries, 6 rejected"


def test_parquet_and_run_directories(folder):
    table = pa.table(
        {
            "qid": ["p-1"],
            "question": ["Q?"],
            "image": [["a.png"]],
            "answer": ["7"],
            "is_video": [False],
        }
    )
    pq.write_table(table, folder / "data.parquet")
    run = folder / "run"
    run.mkdir()
    write(
        run / "rl.jsonl", [{"qid": "r-1", "question": "Q?", "image": ["../a.png"], "answer": "1"}]
    )
    qs = load_queries([folder / "data.parquet", run])
    assert [q.qid for q in qs.queries] == ["p-1", "r-1"]


def test_missing_inputs_are_errors(folder):
    with pytest.raises(FileNotFoundError, match="no such data file"):
        load_queries([folder / "nope.jsonl"])
    with pytest.raises(FileNotFoundError, match=r"folder without rl.jsonl"):
        load_queries([folder / "frames"])


def test_field_types_are_checked(folder):
    path = write(
        folder / "rl.jsonl",
        [
            {"qid": "t-1", "question": "Q?", "image": ["a.png"], "answer": "B", "is_video": "yes"},
            {"qid": "t-2", "question": ["Q?"], "image": ["a.png"], "answer": "B"},
            {"qid": "t-3", "question": "Q?", "image": [], "answer": "B"},
        ],
    )
    reasons = [r.reason for r in load_queries([path]).rejects]
    assert reasons == [
        "field 'is_video' should be true or false",
        "field 'question' should be str, got list",
        "field 'image' is empty (every item needs an image)",
    ]
