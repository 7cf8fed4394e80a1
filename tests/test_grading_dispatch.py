"""The benchmark registry and the grade()/scores() dispatchers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pixelctl.grading import BENCHMARKS, OFFICIAL_METRICS, grade, scores


def test_registry_names_the_official_metric_of_each_benchmark():
    assert OFFICIAL_METRICS == {
        "vstar": "accuracy",
        "tallyqa": "accuracy",
        "infovqa": "anls",
        "mvbench": "accuracy",
    }
    assert {b.grader for b in BENCHMARKS.values()} == {"choice", "count", "anls"}


def test_grade_dispatches_per_benchmark():
    options = ["red", "blue", "green", "white"]
    assert grade("vstar", "zoomed in: \\boxed{(B)}", "B", options=options) == 1.0
    assert grade("MVBench", "\\boxed{green}", "C", options=options) == 1.0
    assert grade("tallyqa", "I see 2, then 1 more: \\boxed{three}", 3) == 1.0
    assert grade("infovqa", "\\boxed{hellp}", ["hello"]) == pytest.approx(0.8)


def test_no_answer_is_wrong_not_missing():
    rambling = "I looked at the whole picture carefully but I am not sure about this one."
    for benchmark, answer in [("vstar", "A"), ("tallyqa", 2), ("infovqa", ["x"])]:
        assert grade(benchmark, rambling, answer) == 0.0


def test_unknown_benchmark():
    with pytest.raises(ValueError, match="unknown benchmark"):
        grade("vqav2", "\\boxed{x}", "x")


def test_scores_records_official_extras_and_paper_compat():
    assert scores("infovqa", "\\boxed{abcd}", ["abxy"], timeout=None) == {
        "anls": 0.0,
        "anls_harness": 0.5,
        "paper_compat": 0.0,
    }
    assert scores("tallyqa", "\\boxed{3}", 3, timeout=None) == {
        "accuracy": 1.0,
        "paper_compat": 1.0,
    }
    # the reference matcher's known false positive, next to the official score
    assert scores("infovqa", "\\boxed{listen}", ["silent"], timeout=None) == {
        "anls": 0.0,
        "anls_harness": 0.0,
        "paper_compat": 1.0,
    }


def test_pure_modules_import_no_heavy_dependencies():
    code = (
        "import sys, pixelctl.rl.rewards, pixelctl.grading, pixelctl.rl.selection\n"
        "heavy = {'torch', 'math_verify', 'sympy', 'transformers', 'ray'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
