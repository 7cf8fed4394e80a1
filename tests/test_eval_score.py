"""`pixelctl score`: re-scoring our samples and the authors' sample.eval_*.jsonl files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixelctl.cli.score import ScoreInputError, rescore, score_command
from pixelctl.grading import paper_compat_score

AUTHORS_LINES = [
    {"qids": "vstar-0", "solutions": "The bag is red. \\boxed{B}", "gts": "B"},
    {"qids": "vstar-1", "solutions": "\\boxed{B}", "gts": "A"},
    # a batched line: lists zipped item by item
    {"qids": ["infovqa-11", "infovqa-12"],
     "solutions": ["It says \\boxed{45 %}", "\\boxed{united states}"],
     "gts": [["45%", "45"], ["United States"]]},
    {"qids": "tallyqa-5", "solutions": "I count \\boxed{three}", "gts": "3"},
]  # fmt: skip


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _pc(response: str, golds) -> float:
    return 100.0 * paper_compat_score(response, golds, timeout=None)


def test_authors_file_scores_per_benchmark(tmp_path: Path, capsys) -> None:
    f = _write(tmp_path / "sample.eval_all.jsonl", AUTHORS_LINES)
    assert score_command(f, None, as_json=True) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got) == {"vstar", "infovqa", "tallyqa"}
    assert got["vstar"]["accuracy"] == 50.0 and got["vstar"]["n"] == 2
    assert got["infovqa"]["anls"] == 87.5 and got["infovqa"]["n"] == 2
    assert "anls_harness" in got["infovqa"] and "accuracy" not in got["infovqa"]
    assert got["tallyqa"] == {
        "accuracy": 100.0,
        "paper_compat": _pc("I count \\boxed{three}", ["3"]),
        "n": 1,
    }
    pc = (
        _pc("It says \\boxed{45 %}", ["45%", "45"])
        + _pc("\\boxed{united states}", ["United States"])
    ) / 2
    assert got["infovqa"]["paper_compat"] == pytest.approx(pc)


def test_table_output_shows_paper_numbers(tmp_path: Path, capsys) -> None:
    f = _write(tmp_path / "sample.eval_vstar.jsonl", AUTHORS_LINES[:2])
    assert score_command(f) == 0
    out = capsys.readouterr().out
    assert "V* Bench" in out and "84.3" in out and "50.0" in out


def test_benchmark_flag_overrides_the_qid_prefix(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "p.jsonl", [{"qids": "17", "solutions": "\\boxed{Paris}", "gts": ["paris"]}]
    )
    with pytest.raises(ScoreInputError, match=r"p\.jsonl, line 1: cannot tell the benchmark"):
        rescore(f)
    assert rescore(f, "infovqa")["infovqa"]["anls"] == 100.0


def test_our_samples_are_rescored_with_their_options(tmp_path: Path) -> None:
    rec = {"qid": "procedural-eval-1", "benchmark": "procedural", "response": "\\boxed{circle}",
           "answer": "circle", "options": ["square", "circle"]}  # fmt: skip
    plain = rec | {"qid": "procedural-eval-2", "options": None, "response": "\\boxed{Left.}",
                   "answer": "left"}  # fmt: skip
    f = _write(tmp_path / "samples.jsonl", [rec, plain])
    assert rescore(f)["procedural"] | {"paper_compat": 0} == {
        "metric": "accuracy", "accuracy": 100.0, "paper_compat": 0, "n": 2}  # fmt: skip


def test_bad_lines_name_file_and_line(tmp_path: Path, capsys) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps(AUTHORS_LINES[0]) + "\n{oops\n")
    assert score_command(f, None, as_json=True) == 2
    assert "bad.jsonl, line 2: not valid JSON" in capsys.readouterr().err
    f.write_text(json.dumps({"qids": "vstar-1", "solutions": "x"}) + "\n")
    with pytest.raises(ScoreInputError, match=r"line 1: authors' line without 'gts'"):
        rescore(f)
    assert score_command(tmp_path / "missing.jsonl") == 2
