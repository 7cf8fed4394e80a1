"""paper-compat: the authors' math_verify matcher, time-bounded and usable from any thread."""

from __future__ import annotations

import threading

import pytest

from pixelctl.grading.paper_compat import _runner, paper_compat_score, reference_match
from pixelctl.grading.timeout import BoundedRunner, GradingError, GradingTimeout


@pytest.mark.parametrize(
    ("response", "answers", "expected"),
    [
        ("I count them. \\boxed{3}", ["3"], 1.0),
        ("\\boxed{4}", ["3"], 0.0),
        ("\\boxed{Yes}", ["yes"], 1.0),  # everything is lower-cased
        ("\\boxed{listen}", ["silent"], 1.0),  # the known false positive (docs/method.md §8)
        ("\\boxed{45}", ["45%"], 1.0),  # %-stripped alternate
        ("\\boxed{45\\%}", ["45%"], 1.0),
        ("\\boxed{troubles, the siege of krishnapur}", ["the siege of krishnapur, troubles"], 1.0),
        ("\\boxed{share contacts via nhs}", ["\\boxed{share contacts}"], 0.0),
        ("<answer>7</answer>", ["7"], 1.0),
        ("no box, but the count is 12", ["12"], 1.0),  # whole-response fallback
        ("\\boxed{0.5}", ["\\frac{1}{2}"], 1.0),
        ("\\boxed{b}", ["a"], 0.0),
        ("", ["x"], -1.0),  # nothing parsable: -1 in training
        ("no digits or boxes in this reply", ["3"], -1.0),
    ],
)
def test_reference_match(response, answers, expected):
    assert reference_match(response, answers) == expected


def test_multispan_matches_when_every_piece_is_in_the_last_box():
    assert reference_match("\\boxed{red and blue}", ["blue, red"]) == 1.0
    assert reference_match("\\boxed{red}", ["blue, red"]) == 0.0


def test_multispan_does_not_blindly_strip_unboxed_answers():
    # the reference strips 7 + 1 characters even here, leaving an empty piece that matches
    # anything with a box; pixelctl strips the wrapper only when it is there
    assert reference_match("\\boxed{zebra}", ["q, w"]) == 0.0


def test_training_keeps_minus_one_evaluation_maps_it_to_zero():
    assert paper_compat_score("", ["x"], training=True, timeout=None) == -1.0
    assert paper_compat_score("", ["x"], timeout=None) == 0.0
    assert paper_compat_score(None, "x", timeout=None) == 0.0
    assert paper_compat_score("\\boxed{3}", "3", training=True, timeout=None) == 1.0


def test_bounded_path_agrees_with_in_process():
    cases = [("\\boxed{3}", ["3"]), ("\\boxed{45}", ["45%"]), ("", ["x"]), ("\\boxed{b}", ["a"])]
    for response, answers in cases:
        inline = paper_compat_score(response, answers, training=True, timeout=None)
        bounded = paper_compat_score(response, answers, training=True, timeout=30.0)
        assert bounded == inline


def test_grading_works_inside_a_worker_thread():
    results, errors = [], []

    def work():
        try:
            results.append(paper_compat_score("\\boxed{42}", ["42"], timeout=30.0))
            results.append(paper_compat_score("\\boxed{42}", ["42"], timeout=None))
        except Exception as exc:  # pragma: no cover - the failure we guard against
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [1.0] * 4


def test_a_hung_check_is_cut_off_and_the_runner_recovers():
    runner = BoundedRunner()
    try:
        with pytest.raises(GradingTimeout):
            runner.call("time:sleep", 60, timeout=0.5)
        assert runner.call("math:sqrt", 16.0, timeout=30.0) == 4.0
        with pytest.raises(GradingError, match="ValueError"):
            runner.call("math:sqrt", -1.0, timeout=30.0)
        assert runner.call("math:sqrt", 9.0, timeout=30.0) == 3.0  # errors do not kill helpers
    finally:
        runner.close()


def test_timeout_scores_wrong(monkeypatch):
    def hang(*args, timeout):
        raise GradingTimeout("simulated")

    monkeypatch.setattr(_runner(), "call", hang)
    assert paper_compat_score("\\boxed{3}", ["3"], training=True) == 0.0
