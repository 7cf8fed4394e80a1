"""The prompt (docs/method.md §3): system message with the Hermes/Nous tool block, the user turn, observations.

The reference builds its system message with qwen-agent's `NousFnCallPrompt`: "You are a helpful
assistant." + "\\n\\n" + a `# Tools` block listing each tool as
`{"type": "function", "function": {...}}` (one JSON line per tool, `json.dumps` default
separators, `ensure_ascii=False`). The function objects carry `name`, `description` and
`parameters` as the reference's `CropImageNormalized` / `SelectFrames` tools define them (recent
qwen-agent releases no longer add `name_for_human` / `args_format`; TIGER-Lab's verl-tool port of
Pixel Reasoner renders the same three keys). Messages are in Qwen's format and go through the
model's own chat template in `render`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pixelctl.executor.observe import CROP_TOOL, FRAMES_TOOL
from pixelctl.models.qwen import IM_END, TOOL_CALL_CLOSE, TOOL_CALL_OPEN

if TYPE_CHECKING:
    from pixelctl.executor import Observation

PromptMode = Literal["vcot", "notool"]

SYSTEM_PROMPT_BASE = "You are a helpful assistant."

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "name": CROP_TOOL,
        "description": (
            "Zoom in on the image based on the bounding box coordinates. It is useful when the "
            "object or text in the image is too small to be seen."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "bbox_2d": {
                    "type": "array",
                    "description": (
                        "coordinates for bounding box of the area you want to zoom in. Values "
                        "should be within [0.0,1.0]."
                    ),
                    "items": {"type": "number"},
                },
                "target_image": {
                    "type": "number",
                    "description": (
                        "The index of the image to crop. Index from 1 to the number of images. "
                        "Choose 1 to operate on original image."
                    ),
                },
            },
            "required": ["bbox_2d", "target_image"],
        },
    },
    {
        "name": FRAMES_TOOL,
        "description": "Select frames from a video.",
        "parameters": {
            "type": "object",
            "properties": {
                "target_frames": {
                    "type": "array",
                    "description": (
                        "List of frame indices to select from the video (no more than 8 frames "
                        "in total)."
                    ),
                    "items": {"type": "integer", "description": "Frame index from 1 to 16."},
                }
            },
            "required": ["target_frames"],
        },
    },
]

TOOL_BLOCK_TEMPLATE = (
    "# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n"
    "<tools>\n{tool_descs}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    f"{TOOL_CALL_OPEN}{TOOL_CALL_CLOSE} XML tags:\n"
    f'{TOOL_CALL_OPEN}\n{{{{"name": <function-name>, "arguments": <args-json-object>}}}}\n'
    f"{TOOL_CALL_CLOSE}"
)

GUIDELINE_VCOT = (
    "Guidelines: Understand the given visual information and the user query. Determine if it is "
    "beneficial to employ the given visual operations (tools). For a video, we can look closer by "
    f"`{FRAMES_TOOL}`. For an image, we can look closer by `crop_image`. Reason with the visual "
    "information step by step, and put your final answer within \\boxed{}."
)
GUIDELINE_NOTOOL = "Please think step by step, and put your final answer within \\boxed{}."
GUIDELINES: dict[str, str] = {"vcot": GUIDELINE_VCOT, "notool": GUIDELINE_NOTOOL}


def tool_block(schemas: Sequence[dict[str, Any]] = TOOL_SCHEMAS) -> str:
    """The `# Tools` block exactly as qwen-agent's NousFnCallPrompt renders it."""
    lines = [json.dumps({"type": "function", "function": f}, ensure_ascii=False) for f in schemas]
    return TOOL_BLOCK_TEMPLATE.format(tool_descs="\n".join(lines))


def system_message(tools: bool = True) -> str:
    """The system text: the base sentence, plus the tool block unless tools are off."""
    return SYSTEM_PROMPT_BASE + "\n\n" + tool_block() if tools else SYSTEM_PROMPT_BASE


def user_text(question: str, mode: PromptMode = "vcot") -> str:
    """The question followed by a blank line and the mode's guideline."""
    if mode not in GUIDELINES:
        raise ValueError(f"prompt mode must be 'vcot' or 'notool', got {mode!r}")
    return f"{question}\n\n{GUIDELINES[mode]}"


def text_item(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def build_messages(
    question: str,
    *,
    images: Sequence[Any] = (),
    video: Sequence[Any] | None = None,
    mode: PromptMode = "vcot",
) -> list[dict[str, Any]]:
    """System + first user turn in Qwen message format: visuals first, then question + guideline."""
    if images and video is not None:
        raise ValueError("a prompt takes images or a video, not both (as the reference)")
    visual: list[dict[str, Any]] = [{"type": "image", "image": img} for img in images]
    if video is not None:
        visual = [{"type": "video", "video": list(video)}]
    return [
        {"role": "system", "content": [text_item(system_message(tools=mode == "vcot"))]},
        {"role": "user", "content": [*visual, text_item(user_text(question, mode))]},
    ]


def assistant_message(text: str) -> dict[str, Any]:
    """An assistant turn as the reference appends it (text only, `<|im_end|>` stripped)."""
    return {"role": "assistant", "content": [text_item(text.replace(IM_END, ""))]}


def observation_message(
    obs: Observation, image_refs: Sequence[Any] | None = None
) -> dict[str, Any]:
    """The user turn carrying an observation: its text, then one image item per returned image.

    `image_refs` replaces the PIL images (e.g. by relative paths when writing SFT records).
    """
    refs = list(obs.images) if image_refs is None else list(image_refs)
    if len(refs) != len(obs.images):
        raise ValueError(f"{len(obs.images)} images but {len(refs)} image_refs")
    return {
        "role": "user",
        "content": [text_item(obs.text), *({"type": "image", "image": r} for r in refs)],
    }


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """A call as the model writes it (qwen-agent's format): `<tool_call>\\n{json}\\n</tool_call>`."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}\n{body}\n{TOOL_CALL_CLOSE}"


def render(
    messages: list[dict[str, Any]],
    processor_or_tokenizer: Any,
    *,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text through the model's own chat template (processor or tokenizer)."""
    return processor_or_tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
