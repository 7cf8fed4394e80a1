"""Find the tool call at the end of an assistant turn (Hermes/Nous format, docs/method.md §2).

Rules, from the reference rollout loop: `<|im_end|>` is removed; a turn that does not then end
with `</tool_call>` has no call and ends the rollout; otherwise the text after the *last*
`<tool_call>` up to the next `</tool_call>` is the call. Unlike the reference (`json.loads` on
whatever is there), the JSON must be strict: an object with exactly `name` (a string) and
`arguments` (an object), no NaN/Infinity; every defect becomes a message for the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pixelctl.executor.observe import CALL_FORM
from pixelctl.models.qwen import IM_END, TOOL_CALL_CLOSE, TOOL_CALL_OPEN


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: the tool name, its arguments and the JSON text it came from."""

    name: str
    arguments: dict[str, Any]
    raw: str = ""


@dataclass(frozen=True)
class ParsedTurn:
    """The outcome of parsing a turn: a call, or an error for the model, or no call at all."""

    call: ToolCall | None
    error: str | None
    ends_with_call: bool


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _bad(detail: str) -> ParsedTurn:
    return ParsedTurn(
        call=None,
        error=f"The tool call is not valid: {detail}. Write exactly one call as\n{CALL_FORM}",
        ends_with_call=True,
    )


def _decode(body: str) -> Any:
    return json.loads(body, parse_constant=_reject_constant)


def parse_tool_call(text: str, *, max_chars: int = 65536) -> ParsedTurn:
    """Parse the last tool call of an assistant turn; never raises."""
    turn = text.replace(IM_END, "")
    if not turn.endswith(TOOL_CALL_CLOSE):
        return ParsedTurn(call=None, error=None, ends_with_call=False)
    start = turn.rfind(TOOL_CALL_OPEN)
    if start < 0:
        return _bad(f"the turn ends with {TOOL_CALL_CLOSE} but has no {TOOL_CALL_OPEN}")
    body = turn[start + len(TOOL_CALL_OPEN) :].split(TOOL_CALL_CLOSE, 1)[0]
    if len(body) > max_chars:
        return _bad(f"the call is {len(body)} characters long, more than {max_chars}")
    try:
        data = _decode(body)
    except RecursionError:
        return _bad("the JSON is nested too deeply")
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, over-long integers
        return _bad(f"it is not valid JSON ({exc})")
    if not isinstance(data, dict):
        return _bad(f"it must be a JSON object, not {type(data).__name__}")
    missing = [k for k in ("name", "arguments") if k not in data]
    if missing:
        return _bad(f'the object needs the keys "name" and "arguments"; missing {missing}')
    extra = sorted(k for k in data if k not in ("name", "arguments"))
    if extra:
        return _bad(f'the object takes only "name" and "arguments"; remove {extra[:5]}')
    if not isinstance(data["name"], str):
        return _bad('"name" must be a string')
    if not isinstance(data["arguments"], dict):
        return _bad('"arguments" must be a JSON object')
    call = ToolCall(name=data["name"], arguments=data["arguments"], raw=body.strip())
    return ParsedTurn(call=call, error=None, ends_with_call=True)
