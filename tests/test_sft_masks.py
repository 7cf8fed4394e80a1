"""Loss masks on hand-built token sequences: exact trained positions for each mode."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixelctl.masks import (
    ChatTokens,
    MaskError,
    label_mask,
    segments,
    trained_turns,
)


def trained_spans(mask) -> list[tuple[int, int]]:
    """The maximal [start, end) runs of True (a reading aid for the assertions below)."""
    spans, start = [], None
    for i, on in enumerate([*mask, False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            spans.append((start, i))
            start = None
    return spans


# A toy vocabulary: 1 <|im_start|>, 2 <|im_end|>, 3 "\n", 4 "\n\n" (a merged newline),
# 10/11/12 the role words, 20..23 vision tokens, 100+ ordinary text.
IM_START, IM_END, NL, NLNL = 1, 2, 3, 4
ROLE = {"system": 10, "user": 11, "assistant": 12}
TOKENS = ChatTokens(
    im_start=IM_START,
    im_end=IM_END,
    headers={r: (IM_START, t, NL) for r, t in ROLE.items()},
    vision=frozenset({20, 21, 22, 23}),
)
SELF_CORRECTION = ["system", "user", "assistant", "user", "assistant", "user", "assistant"]


def render(turns: list[tuple[str, list[int]]]) -> list[int]:
    """<|im_start|>role\\n CONTENT <|im_end|>\\n for each turn, as Qwen's template does."""
    ids: list[int] = []
    for role, content in turns:
        ids += [IM_START, ROLE[role], NL, *content, IM_END, NL]
    return ids


def conversation() -> tuple[list[int], list[str]]:
    turns = [
        ("system", [100]),
        ("user", [20, 22, 22, 21, 101]),  # an image then the question
        ("assistant", [102, 103]),  # the inserted error
        ("user", [104, 20, 22, 21]),  # observation with its image
        ("assistant", [105, 106]),  # the fix
        ("user", [107, 20, 22, 21]),
        ("assistant", [108]),  # the answer
    ]
    return render(turns), [r for r, _ in turns]


def test_turn_selection_on_a_self_correction_trajectory():
    assert trained_turns(SELF_CORRECTION, "last_two_assistant") == [4, 6]
    assert trained_turns(SELF_CORRECTION, "all_assistant") == [2, 4, 6]
    assert trained_turns(SELF_CORRECTION, "skip_marked_errors", [2]) == [4, 6]
    assert trained_turns(SELF_CORRECTION, "skip_marked_errors", []) == [2, 4, 6]
    assert trained_turns(["user", "assistant"], "last_two_assistant") == [1]
    with pytest.raises(ValueError, match="unknown mask mode"):
        trained_turns(SELF_CORRECTION, "everything")  # type: ignore[arg-type]


def test_last_two_assistant_trains_the_fix_and_the_answer_exactly():
    ids, roles = conversation()
    mask = label_mask(ids, roles, trained_turns(roles, "last_two_assistant"), TOKENS)
    # the fix turn starts at 32: <|im_start|> assistant \n 105 106 <|im_end|> \n
    assert [ids[i] for i in range(len(ids)) if mask[i]] == [105, 106, IM_END, 108, IM_END]
    assert trained_spans(mask) == [(35, 38), (51, 53)]


def test_all_assistant_also_trains_the_inserted_error():
    ids, roles = conversation()
    mask = label_mask(ids, roles, trained_turns(roles, "all_assistant"), TOKENS)
    assert trained_spans(mask) == [(19, 22), (35, 38), (51, 53)]
    assert [ids[i] for i in range(19, 22)] == [102, 103, IM_END]


def test_skip_marked_errors_matches_last_two_here_and_differs_when_unmarked():
    ids, roles = conversation()
    marked = label_mask(ids, roles, trained_turns(roles, "skip_marked_errors", [2]), TOKENS)
    unmarked = label_mask(ids, roles, trained_turns(roles, "skip_marked_errors", []), TOKENS)
    assert trained_spans(marked) == [(35, 38), (51, 53)]
    assert trained_spans(unmarked) == [(19, 22), (35, 38), (51, 53)]


def test_vision_and_observation_tokens_are_never_trained():
    ids, roles = conversation()
    mask = label_mask(ids, roles, trained_turns(roles, "all_assistant"), TOKENS)
    assert not any(m for i, m in zip(ids, mask, strict=True) if i in TOKENS.vision)
    for seg in segments(ids, roles, TOKENS):
        if seg.role != "assistant":
            assert not any(mask[seg.start : seg.end])


def test_template_inserted_system_turn_shifts_segments():
    ids = render([("system", [100]), ("user", [101]), ("assistant", [102])])
    roles = ["user", "assistant"]  # the record has no system turn; the template added one
    segs = segments(ids, roles, TOKENS)
    assert [(s.message, s.role) for s in segs] == [(-1, "system"), (0, "user"), (1, "assistant")]
    mask = label_mask(ids, roles, [1], TOKENS)
    assert [ids[i] for i in range(len(ids)) if mask[i]] == [102, IM_END]


def test_header_newline_merged_into_content_counts_as_content():
    # "<|im_start|>assistant\n\nOK": the tokenizer merged the two newlines into one token.
    ids = [*render([("user", [101])]), IM_START, ROLE["assistant"], NLNL, 102, IM_END, NL]
    mask = label_mask(ids, ["user", "assistant"], [1], TOKENS)
    assert [ids[i] for i in range(len(ids)) if mask[i]] == [NLNL, 102, IM_END]


def test_padding_after_the_last_turn_is_not_trained():
    ids = [*render([("user", [101]), ("assistant", [102])]), 0, 0, 0]
    mask = label_mask(ids, ["user", "assistant"], [1], TOKENS)
    assert mask[-3:] == [False, False, False]


def test_markup_inside_text_is_an_error_not_a_wrong_mask():
    ids = render([("user", [101, IM_START]), ("assistant", [102])])
    with pytest.raises(MaskError, match=r"header|tokens"):
        label_mask(ids, ["user", "assistant"], [1], TOKENS)


def test_a_user_turn_can_never_be_selected_for_training():
    ids = render([("user", [101]), ("assistant", [102])])
    with pytest.raises(MaskError, match="only assistants train"):
        label_mask(ids, ["user", "assistant"], [0], TOKENS)


content = st.lists(st.integers(100, 120), min_size=1, max_size=6)


@given(st.lists(st.tuples(content, content), min_size=1, max_size=5), st.data())
def test_trained_tokens_are_exactly_the_chosen_turns_contents(pairs, data):
    turns = [t for user, asst in pairs for t in (("user", user), ("assistant", asst))]
    ids, roles = render(turns), [r for r, _ in turns]
    chosen = data.draw(st.sets(st.sampled_from(trained_turns(roles, "all_assistant"))))
    mask = label_mask(ids, roles, chosen, TOKENS)
    expected = [tok for k in sorted(chosen) for tok in [*turns[k][1], IM_END]]
    assert [ids[i] for i in range(len(ids)) if mask[i]] == expected
