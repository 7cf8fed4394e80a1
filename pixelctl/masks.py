"""Loss masks: which assistant turns are trained, and which tokens of a rendered conversation.

Pure (no torch): the collator and the inspector call these on plain lists of token ids.

Turn selection (`trained_turns`), over the record's `message_list` indices:
- `last_two_assistant` (the reference trainer): the last two assistant turns. In a
  self-correction trajectory `[sys, user, A_err, obs, A_fix, obs, A_answer]` that is
  `A_fix` and `A_answer`, so the inserted erroneous operation is never learned;
- `all_assistant`: every assistant turn (the RL loss trains these too);
- `skip_marked_errors`: every assistant turn except the ones the record lists in `error_turns`.

Token selection (`label_mask`): the rendered sequence is split at `<|im_start|>` (one segment per
message; the chat template renders nothing else between messages). In a trained assistant turn
the content and its closing `<|im_end|>` are trained; the `<|im_start|>assistant\\n` header and
the newline after `<|im_end|>` are not (the prompt supplies the header at inference). The
reference trainer also trains the three header tokens; they are fully predictable, so the
difference is immaterial and we keep the cleaner rule. System, user and observation tokens,
padding, and every vision token are never trained.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pixelctl.models.qwen import IM_END, IM_START, VISION_TOKENS, turn_header

MaskMode = Literal["last_two_assistant", "all_assistant", "skip_marked_errors"]
MASK_MODES: tuple[MaskMode, ...] = ("last_two_assistant", "all_assistant", "skip_marked_errors")


class MaskError(ValueError):
    """The token ids do not line up with the conversation (a template or tokenizer mismatch)."""


def trained_turns(
    roles: Sequence[str], mode: MaskMode, error_turns: Collection[int] = ()
) -> list[int]:
    """Indices of the assistant messages whose tokens are trained under `mode`."""
    assistant = [i for i, role in enumerate(roles) if role == "assistant"]
    if mode == "last_two_assistant":
        return assistant[-2:]
    if mode == "all_assistant":
        return assistant
    if mode == "skip_marked_errors":
        skip = set(error_turns)
        return [i for i in assistant if i not in skip]
    raise ValueError(f"unknown mask mode {mode!r}; choose one of {', '.join(MASK_MODES)}")


@dataclass(frozen=True)
class Segment:
    """One rendered message: tokens [start, end), its header length and its `<|im_end|>`."""

    message: int  # index into the record's message_list; -1 for a template-inserted system turn
    role: str
    start: int
    end: int
    content_start: int  # first token after `<|im_start|>role\n`
    im_end: int  # position of the message's `<|im_end|>`, or -1 if cut off


@dataclass(frozen=True)
class ChatTokens:
    """The token ids the segmentation needs, looked up once per tokenizer."""

    im_start: int
    im_end: int
    headers: dict[str, tuple[int, ...]]  # role → ids of "<|im_start|>{role}\n"
    vision: frozenset[int]  # <|vision_start|>, <|vision_end|>, <|image_pad|>, <|video_pad|>


def segments(ids: Sequence[int], roles: Sequence[str], tokens: ChatTokens) -> list[Segment]:
    """Split `ids` into one segment per message of `roles` (the record's roles, in order).

    A template that inserts a default system turn (Qwen's, when the first message is not a
    system message) yields one extra leading segment, attributed to message -1.
    """
    starts = [i for i, t in enumerate(ids) if t == tokens.im_start]
    offset = len(starts) - len(roles)
    if offset not in (0, 1) or (offset == 1 and roles and roles[0] == "system"):
        raise MaskError(
            f"the rendered sequence has {len(starts)} {IM_START} tokens for {len(roles)} "
            "messages; the text contains chat markup or the template is not Qwen's"
        )
    names = ["system"] * offset + list(roles)
    bounds = [*starts, len(ids)]
    out = []
    for k, role in enumerate(names):
        start, end = bounds[k], bounds[k + 1]
        im_end = next((i for i in range(start, end) if ids[i] == tokens.im_end), -1)
        header = _header_length(ids, start, tokens.headers[role])
        if header is None:
            raise MaskError(f"message {k - offset} does not start with the {role!r} header")
        out.append(Segment(k - offset, role, start, end, start + header, im_end))
    return out


def _header_length(ids: Sequence[int], start: int, header: tuple[int, ...]) -> int | None:
    """Tokens of `<|im_start|>role\\n` at `start`, or None if the header is not there.

    Byte-level BPE merges the header's newline with newlines that open the content
    ("\\n\\nHere is the cropped image"), so the last header token may be a merged one: then the
    header ends before it and the merged token counts as content.
    """
    if tuple(ids[start : start + len(header)]) == header:
        return len(header)
    if tuple(ids[start : start + len(header) - 1]) == header[:-1]:
        return len(header) - 1
    return None


def label_mask(
    ids: Sequence[int], roles: Sequence[str], trained: Collection[int], tokens: ChatTokens
) -> list[bool]:
    """True where the token is a training target: the content and `<|im_end|>` of trained turns."""
    mask = [False] * len(ids)
    wanted = set(trained)
    for seg in segments(ids, roles, tokens):
        if seg.message not in wanted:
            continue
        if seg.role != "assistant":
            raise MaskError(f"message {seg.message} is a {seg.role} turn; only assistants train")
        stop = seg.im_end + 1 if seg.im_end >= 0 else seg.end
        for i in range(seg.content_start, stop):
            mask[i] = ids[i] not in tokens.vision
    return mask


def chat_tokens(tokenizer: Any) -> ChatTokens:
    """Look up the ids the mask needs; headers as the tokenizer encodes them."""
    ids = tokenizer.convert_tokens_to_ids
    headers = {
        role: tuple(tokenizer.encode(turn_header(role), add_special_tokens=False))
        for role in ("system", "user", "assistant")
    }
    return ChatTokens(
        im_start=ids(IM_START),
        im_end=ids(IM_END),
        headers=headers,
        vision=frozenset(ids(t) for t in VISION_TOKENS),
    )
