"""ANLS for InfographicsVQA (docs/method.md §8), plus the variant the popular harnesses compute.

Official (docs/method.md §8): strings lower-cased and whitespace-collapsed,
``NL = lev(gt, pred) / max(|gt|, |pred|)``, score ``1 - NL`` if ``NL < tau`` else 0, max over
the gold answers. ``anls_harness`` reproduces the RRC script that lmms-eval, VLMEvalKit and
Qwen-VL's eval copy: the distance is taken on the normalised strings but the length on the
*raw* ones, and a similarity of exactly ``tau`` is kept (``1 - NL < tau`` is zeroed). The two
differ only at the threshold and on answers with extra whitespace or case-changing length;
record both.
"""

from __future__ import annotations

from collections.abc import Sequence

from pixelctl.grading.extract import clean_span, extract_answer


def levenshtein(a: str, b: str) -> int:
    """Edit distance with unit costs (two-row dynamic programme)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def normalise(text: str) -> str:
    """Lower-case and collapse whitespace, as the ANLS definition says."""
    return " ".join(text.lower().split())


def _answers(answers: str | Sequence[str]) -> list[str]:
    golds = [answers] if isinstance(answers, str) else [str(a) for a in answers]
    if not golds:
        raise ValueError("ANLS needs at least one gold answer")
    return golds


def anls_score(prediction: str | None, answers: str | Sequence[str], tau: float = 0.5) -> float:
    """ANLS of one prediction against its gold answers (docs/method.md §8); None scores 0."""
    if prediction is None:
        return 0.0
    pred = normalise(prediction)
    best = 0.0
    for gold in map(normalise, _answers(answers)):
        length = max(len(gold), len(pred))
        nl = levenshtein(gold, pred) / length if length else 0.0
        best = max(best, 1.0 - nl if nl < tau else 0.0)
    return best


def anls_harness_score(
    prediction: str | None, answers: str | Sequence[str], tau: float = 0.5
) -> float:
    """The harness variant (RRC script): raw-string length, similarity ``>= tau`` kept."""
    if prediction is None:
        return 0.0
    values = []
    for gold in _answers(answers):
        length = max(len(gold.upper()), len(prediction.upper()))
        dist = levenshtein(normalise(gold), normalise(prediction))
        values.append(dist / length if length else 0.0)
    similarity = 1.0 - min(values)
    return 0.0 if similarity < tau else similarity


def grade_anls(response: str | None, answers: str | Sequence[str], tau: float = 0.5) -> float:
    """ANLS of the response's final-answer span."""
    return anls_score(_span(response), answers, tau)


def grade_anls_harness(
    response: str | None, answers: str | Sequence[str], tau: float = 0.5
) -> float:
    """Harness-variant ANLS of the response's final-answer span."""
    return anls_harness_score(_span(response), answers, tau)


def _span(response: str | None) -> str | None:
    span = extract_answer(response)
    return None if span is None else clean_span(span)
