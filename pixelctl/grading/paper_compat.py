"""``paper-compat``: the authors' one binary matcher for every benchmark (docs/method.md §8).

What the reference code (``rule_reward``/``handle_boxed``/``do_verify`` in their OpenRLHF
fork) really does, rewritten here:

1. Lower-case the response and every gold answer; when the answer list holds an answer with
   ``%``, put its ``%``-stripped form first.
2. For each gold answer (stop at the first match): light normalisation (``dfrac``→``frac``,
   drop ``\\text``, ``minutes``, ``cm``; ``\\varnothing``→``\\emptyset``), parse it with
   ``math_verify`` (wrapped in ``\\boxed{}``; an unparsable gold gives -1), then try the tail
   from the last ``\\boxed``, then the first ``<answer>…</answer>``, keeping the first that
   verifies; if none does, verify the whole response. ``verify`` gets the prediction as its
   first argument, as in the code. An empty prediction parse, or any exception, gives -1.
3. If that answer did not match and contains a comma, it matches when every comma piece occurs
   in the tail from the last ``boxed`` (meant for multi-span answers; known to over-accept).
   The rule fires for *every* gold answer with a comma, a list or not, and tests substrings of
   the whole tail (the box and everything after it), in any order. With gold
   ``troubles, the siege of krishnapur`` (the code's own example): ``\\boxed{the siege of
   krishnapur and troubles}`` matches, ``\\boxed{troubles}`` does not, ``\\boxed{troubles}. I
   first thought of the siege of krishnapur.`` does, and so does ``\\boxed{not troubles, nor the
   siege of krishnapur}``. Long answers that merely contain a comma match the same way:
   ``\\boxed{washington state, not d.c.}`` for ``washington, d.c.``, ``\\boxed{only on weekends,
   yes}`` for ``yes, only on weekends``, ``\\boxed{fewer than 5, more than 2}`` for ``2, 5``, and
   ``\\boxed{12345}`` for ``1,234`` (a thousands separator: ``1`` and ``234`` are both in it).
   ``tests/test_eval_official.py`` pins these.

Their pipeline ends up on this fallback path even where it meant to require a box, because
``batch_rule_reward`` shifts its positional arguments. Deviation: the code strips
``\\boxed{``/``}`` from a multi-span answer blindly (7 + 1 characters), which turns short
unboxed answers like ``a, b`` into an empty piece that matches anything; pixelctl strips the
wrapper only when it is there. Training mode keeps -1 for unparsable answers (the reward the
authors trained with); evaluation maps it to 0 (wrong). A timed-out check is wrong (0), as
``math_verify`` itself reports a timed-out comparison.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

from pixelctl.grading.timeout import BoundedRunner, GradingTimeout

DEFAULT_TIMEOUT = 5.0
_MC_LETTERS = "ABCDEFGHIJK"
_ANSWER_TAG_RE = re.compile("<answer>(.*?)</answer>")
_TARGET = "pixelctl.grading.paper_compat:reference_match"


@cache
def _math_verify() -> tuple[Any, Any]:
    """Import lazily, and silence its "timeout disabled" warning: we bound time ourselves."""
    import math_verify.grader
    import math_verify.parser

    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    return math_verify.parse, math_verify.verify


def _normalise(text: str) -> str:
    text = text.replace("dfrac", "frac").replace("\\text", "")
    text = text.replace("\\varnothing", "\\emptyset")
    return text.replace("minutes", "").replace("cm", "")


def _verify(candidate: str, gold: list) -> float:
    parse, verify = _math_verify()
    try:
        pred = parse(candidate, parsing_timeout=None)
        if len(gold) > 1 and gold[1] in _MC_LETTERS:  # a substring test, as in the code
            return float(candidate[len("\\boxed{") :].startswith(gold[1]))
        if not pred:
            return -1.0
        return float(verify(pred, gold, timeout_seconds=None))
    except Exception:
        return -1.0


def _match_one(sol: str, answer: str) -> float:
    parse, _ = _math_verify()
    answer = _normalise(answer)
    try:
        gold = parse(
            answer if "\\boxed" in answer else f"\\boxed{{{answer}}}", parsing_timeout=None
        )
    except Exception:
        return -1.0
    if not gold:
        return -1.0
    for indicator in ("\\boxed", "<answer>", "Answer:"):  # "Answer:" never hits lower-case text
        if indicator not in sol:
            continue
        if indicator == "<answer>":
            found = _ANSWER_TAG_RE.search(sol)
            if not found:
                continue
            candidate = f"\\boxed{{{found.group(1)}}}"
        elif indicator == "Answer:":
            candidate = f"\\boxed{{{sol.split(indicator)[-1].strip()}}}"
        else:
            candidate = sol[sol.rindex(indicator) :].strip()
        result = _verify(_normalise(candidate), gold)
        if result > 0.99:
            return result
    return _verify(_normalise(sol), gold)


def _gold_list(answers: str | Sequence[str]) -> list[str]:
    if isinstance(answers, str):
        return [answers.lower()]
    golds = [str(a).lower() for a in answers]
    stripped = next((g.replace("%", "") for g in golds if "%" in g), None)
    if stripped is not None and stripped not in golds:
        golds.insert(0, stripped)
    return golds


def _multispan_hit(sol: str, answer: str) -> bool | None:
    inner = answer[len("\\boxed{") : -1] if re.fullmatch(r"\\boxed\{.*\}", answer) else answer
    pieces = [p.lower().strip() for p in inner.split(",")]
    boxed_at = sol.rfind("boxed")
    if boxed_at == -1:
        return None
    tail = "\\" + sol[boxed_at:]
    return all(piece in tail for piece in pieces)


def reference_match(response: str, answers: str | Sequence[str]) -> float:
    """The reference matcher in-process: 1.0, 0.0, or -1.0 (unparsable). Not time-bounded."""
    sol = (response or "").lower()
    result = 0.0
    for answer in _gold_list(answers):
        result = _match_one(sol, answer)
        if result > 0.5:
            break
        if "," in answer and _multispan_hit(sol, answer):
            return 1.0
    return result


_RUNNER: BoundedRunner | None = None
_RUNNER_LOCK = threading.Lock()


def _runner() -> BoundedRunner:
    global _RUNNER
    with _RUNNER_LOCK:
        if _RUNNER is None:
            _RUNNER = BoundedRunner(preload=("math_verify", "pixelctl.grading.paper_compat"))
        return _RUNNER


def paper_compat_score(
    response: str | None,
    answers: str | Sequence[str],
    *,
    training: bool = False,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> float:
    """The reference score of one response, bounded by ``timeout`` seconds from any thread.

    ``training=True`` returns 1, 0 or -1 (unparsable), the value the authors' reward used;
    otherwise 1 or 0. ``timeout=None`` runs in-process without a bound (fast, for trusted
    inputs and benchmarks).
    """
    if not isinstance(answers, str):
        answers = [str(a) for a in answers]  # numpy/pyarrow lists pickle as plain lists
    if timeout is None:
        result = reference_match(response or "", answers)
    else:
        try:
            result = _runner().call(_TARGET, response or "", answers, timeout=timeout)
        except GradingTimeout:
            result = 0.0
    return result if training else float(result > 0)
