"""ANLS (InfographicsVQA) as docs/method.md §8 defines it, the harness variant, and exact match."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixelctl.grading.anls import (
    anls_harness_score,
    anls_score,
    grade_anls,
    grade_anls_harness,
    levenshtein,
)
from pixelctl.grading.exact import exact_match, grade_exact


@pytest.mark.parametrize(
    ("a", "b", "d"), [("", "", 0), ("abc", "", 3), ("kitten", "sitting", 3), ("abcd", "abxy", 2)]
)
def test_levenshtein(a, b, d):
    assert levenshtein(a, b) == d == levenshtein(b, a)


def test_anls_values():
    assert anls_score("hello", ["hellp"]) == pytest.approx(0.8)
    assert anls_score("  Hello   World ", ["hello world"]) == 1.0
    assert anls_score("ab", ["cd"]) == 0.0
    assert anls_score("hellp", ["zzz", "hello"]) == pytest.approx(0.8)  # max over answers
    assert anls_score(None, ["x"]) == 0.0
    assert anls_score("", [""]) == 1.0


def test_threshold_is_strict_officially_and_inclusive_in_harnesses():
    # NL = 2/4 = 0.5 exactly: docs/method.md §8 says NL < 0.5 scores, the RRC script keeps similarity 0.5
    assert anls_score("abcd", ["abxy"]) == 0.0
    assert anls_harness_score("abcd", ["abxy"]) == 0.5


def test_harness_measures_length_on_raw_strings():
    # normalised "ab" vs "ax": distance 1; official length 2 -> NL 0.5 -> 0
    # harness length uses the raw "ab   " (5 chars) -> 1 - 1/5 = 0.8
    assert anls_score("ab   ", ["ax"]) == 0.0
    assert anls_harness_score("ab   ", ["ax"]) == pytest.approx(0.8)


def test_grade_uses_the_answer_span():
    response = "The chart lists 45% for 2019 and 50% for 2020. \\boxed{\\text{50\\%}}"
    assert grade_anls(response, ["50\\%"]) == 1.0
    assert grade_anls("no answer given in this long rambling response at all, sorry", ["x"]) == 0.0
    assert grade_anls_harness("\\boxed{hellp}", ["hello"]) == pytest.approx(0.8)


@given(st.text(max_size=12), st.lists(st.text(max_size=12), min_size=1, max_size=3))
def test_anls_bounds(pred, golds):
    for score in (anls_score(pred, golds), anls_harness_score(pred, golds)):
        assert 0.0 <= score <= 1.0
    if any(" ".join(g.lower().split()) == " ".join(pred.lower().split()) for g in golds):
        assert anls_score(pred, golds) == 1.0


def test_exact_match():
    assert exact_match(" The  Sheep. ", ["the sheep"]) == 1.0
    assert exact_match("sheep", ["the sheep"]) == 0.0
    assert exact_match(None, ["x"]) == 0.0
    assert grade_exact("so \\boxed{\\text{Blue}}", ["blue", "navy"]) == 1.0
