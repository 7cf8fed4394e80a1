"""The eval loop with a scripted model: records, scores, resume, errors, the processor clamp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pixelctl import grading
from pixelctl.agent import Generation, Query
from pixelctl.evaluation.chunks import ProcessorClamp, RunSettings, chunks
from pixelctl.evaluation.loaders import load_source
from pixelctl.evaluation.metrics import summarize
from pixelctl.evaluation.runner import run_eval
from pixelctl.evaluation.table import rows
from pixelctl.executor import ExecutorSettings, PixelBounds
from pixelctl.prompt import format_tool_call
from tests.helpers import eval_fixtures as fx

PX = 28 * 28
SMALL = PixelBounds(4 * PX, 64 * PX, 4 * PX, 64 * PX, 4 * PX, 16 * PX, 4 * PX, 16 * PX)
SETTINGS = RunSettings(
    executor=ExecutorSettings(bounds=SMALL, box_mode="strict"),
    max_new_tokens=32,
    chunk_size=2,
    grading_timeout=None,
)
CROP = format_tool_call(
    "crop_image_normalized", {"bbox_2d": [0.2, 0.2, 0.6, 0.6], "target_image": 1}
)
FRAMES = format_tool_call("select_frames", {"target_frames": [2, 5]})
# the final answer per question stem (first line), right or wrong on purpose
REPLIES = {
    "What is the color of the bag?": "B",  # gold B
    "Is the cup on the left or right of the dog?": "B",  # gold A
    "How many red bags are on the left?": "three",  # gold 3
    "How many people are sitting?": "2",  # gold 0
    "What percentage of people use email?": "45 %",  # ANLS 0.75 against "45%"
    "Which country ranks first?": "united states",  # ANLS 1
    "Question: What did the person do first?": "B",  # gold B
    "Question: Who speaks?": "Rachel",  # option text of gold B
    "Question: Which pose?": "B",  # gold A
    "Question: Where is the ball?": "(C) right",  # gold C
}


class Scripted:
    """Turn 1 calls a tool (crop for images, frames for videos); turn 2 answers per REPLIES."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.batches: list[int] = []
        self.fail_on_call = fail_on_call

    def __call__(self, convs, samplings):
        if self.fail_on_call is not None and len(self.batches) + 1 == self.fail_on_call:
            raise RuntimeError("killed")
        self.batches.append(len(convs))
        assert all(s.greedy for s in samplings)
        out = []
        for conv in convs:
            turns = sum(m["role"] == "assistant" for m in conv)
            first = conv[1]["content"]
            if turns == 0:
                video = any(item["type"] == "video" for item in first)
                text = "Let me look. " + (FRAMES if video else CROP)
            else:
                stem = first[-1]["text"].split("\n")[0]
                text = f"So \\boxed{{{REPLIES[stem]}}}"
            out.append(Generation(text, prompt_tokens=100 * (turns + 1), completion_tokens=7))
        return out


@pytest.fixture(scope="module")
def queries(tmp_path_factory) -> list[Query]:
    root = tmp_path_factory.mktemp("bench")
    qs = []
    for name in ("vstar", "tallyqa", "infovqa", "mvbench"):
        qs += load_source(name, getattr(fx, name)(root / name), "official")
    return qs


def test_chunks_never_mix_benchmarks(queries) -> None:
    sizes = [(c[0].benchmark, len(c)) for c in chunks(queries, 3)]
    assert sizes == [("vstar", 2), ("tallyqa", 2), ("infovqa", 2), ("mvbench", 3), ("mvbench", 1)]


def test_records_hold_the_conversation_crops_and_scores(queries, tmp_path: Path) -> None:
    records = run_eval(queries, tmp_path, SETTINGS, generate=Scripted())
    assert [r["qid"] for r in records] == [q.qid for q in queries]
    by = {r["qid"]: r for r in records}
    v = by["vstar-0"]
    assert v["stop_reason"] == "answer" and v["n_calls"] == 1 and v["n_operations"] == 1
    assert v["calls"][0]["name"] == "crop_image_normalized" and v["calls"][0]["ok"]
    assert v["crops"] == ["crops/vstar/vstar-0/01.png"]
    assert Image.open(tmp_path / v["crops"][0]).format == "PNG"
    roles = [m["role"] for m in v["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert v["messages"][1]["content"][0] == {"type": "image", "image": queries[0].images[0]}
    assert v["messages"][3]["content"][1] == {"type": "image", "image": v["crops"][0]}
    assert v["extracted"] == "B" and v["official"] == 1.0 and v["metric"] == "accuracy"
    assert (v["prompt_tokens"], v["completion_tokens"]) == (200, 14)
    assert by["vstar-1"]["official"] == 0.0
    assert (by["tallyqa-11"]["official"], by["tallyqa-12"]["official"]) == (1.0, 0.0)
    assert by["infovqa-65718"]["official"] == pytest.approx(0.75)
    assert (
        by["infovqa-65718"]["metric"] == "anls" and "anls_harness" in by["infovqa-65718"]["scores"]
    )
    mv = by["mvbench-action_sequence-0"]
    assert mv["messages"][1]["content"][0]["video"] == list(queries[6].images)
    assert mv["calls"][0]["name"] == "select_frames" and len(mv["crops"]) == 2
    for r in records:  # paper-compat is the authors' matcher on the same response
        golds = r["answer"] if isinstance(r["answer"], list) else [r["answer"]]
        assert r["paper_compat"] == grading.paper_compat_score(r["response"], golds, timeout=None)


def test_metrics_per_benchmark_and_table(queries, tmp_path: Path) -> None:
    metrics = summarize(run_eval(queries, tmp_path, SETTINGS, generate=Scripted()))
    assert metrics["vstar"]["accuracy"] == 50.0 and metrics["vstar"]["n"] == 2
    assert metrics["tallyqa"]["accuracy"] == 50.0
    assert metrics["infovqa"]["anls"] == 87.5 and metrics["infovqa"]["metric"] == "anls"
    assert metrics["mvbench"]["accuracy"] == 75.0 and metrics["mvbench"]["tool_use_rate"] == 100.0
    assert metrics["mvbench"]["categories"]["fine_grained_pose"]["accuracy"] == 0.0
    assert metrics["vstar"]["calls_mean"] == 1.0
    table = {r[0]: r for r in rows(metrics)}
    assert table["V* Bench"][2:] == [
        "accuracy",
        "50.0",
        table["V* Bench"][4],
        "70.4",
        "84.3",
        "79.0",
        f"{metrics['vstar']['tool_use_rate']:.1f}",
        "78.5",
    ]
    assert table["MVBench"][-2:] == ["100.0", "—"]  # RaPR: ours, the paper's (V* only)
    assert table["InfographicsVQA"][2:4] == ["ANLS", "87.5"]


def test_resume_after_a_kill_gives_the_same_file(queries, tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    run_eval(queries, whole, SETTINGS, generate=Scripted())
    broken = tmp_path / "broken"
    with pytest.raises(RuntimeError, match="killed"):
        run_eval(queries, broken, SETTINGS, generate=Scripted(fail_on_call=5))  # 2 chunks done
    assert len((broken / "samples.jsonl").read_text().splitlines()) == 4
    again = Scripted()
    run_eval(queries, broken, SETTINGS, generate=again)
    assert (broken / "samples.jsonl").read_bytes() == (whole / "samples.jsonl").read_bytes()
    assert again.batches == [2, 2, 2, 2, 2, 2]  # 3 chunks left, two turns each


def test_a_partly_written_chunk_is_rerun_whole_and_kept(queries, tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    run_eval(queries, whole, SETTINGS, generate=Scripted())
    part = tmp_path / "part"
    part.mkdir()
    lines = (whole / "samples.jsonl").read_text().splitlines()
    (part / "samples.jsonl").write_text(lines[0] + "\n" + lines[1][:40])  # torn second line
    again = Scripted()
    run_eval(queries, part, SETTINGS, generate=again)
    assert (part / "samples.jsonl").read_bytes() == (whole / "samples.jsonl").read_bytes()
    assert again.batches[0] == 2  # the first chunk ran again, both items batched together


def test_unreadable_image_is_a_wrong_record_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    q = Query("vstar-9", "What is the color of the bag?", (str(bad),), answer="A",
              benchmark="vstar", options=("red", "blue"))  # fmt: skip
    [r] = run_eval([q], tmp_path / "out", SETTINGS, generate=Scripted())
    assert r["stop_reason"] == "error" and r["official"] == 0.0 and "bad.png" in r["error"]
    assert summarize([r])["vstar"]["n"] == 1 and summarize([r])["vstar"]["errors"] == 1


def test_notool_is_one_turn_without_tools(queries, tmp_path: Path) -> None:
    settings = RunSettings(**{**SETTINGS.__dict__, "mode": "notool"})
    [r] = run_eval(queries[:1], tmp_path, settings, generate=Scripted())
    assert r["stop_reason"] == "notool" and r["n_calls"] == 0
    assert "<tools>" not in r["messages"][0]["content"][0]["text"]
    assert r["messages"][1]["content"][-1]["text"].endswith(
        "Please think step by step, and put your final answer within \\boxed{}."
    )


def test_processor_clamp_resizes_once_per_image() -> None:
    seen = []

    def generate(convs, samplings):
        seen.append(convs[0][1]["content"][0]["image"])
        return [Generation("x")]

    img = Image.new("RGB", (56, 56))
    conv = [{"role": "system", "content": []},
            {"role": "user", "content": [{"type": "image", "image": img}]}]  # fmt: skip
    clamp = ProcessorClamp(generate, 4 * PX * 4, None)  # at least 112×112
    clamp([conv], [None])
    clamp([conv], [None])
    assert seen[0].size == (112, 112) and seen[1] is seen[0]
    assert conv[1]["content"][0]["image"] is img  # the rollout's own conversation is untouched


def test_samples_file_is_plain_json_lines(queries, tmp_path: Path) -> None:
    run_eval(queries[:2], tmp_path, SETTINGS, generate=Scripted())
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert [json.loads(x)["qid"] for x in lines] == ["vstar-0", "vstar-1"]
