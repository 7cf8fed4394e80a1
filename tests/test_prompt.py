"""The prompt (docs/method.md §3): exact system text and guidelines, Qwen messages, chat-template render."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from pixelctl.executor import Session, ToolCall
from pixelctl.prompt import (
    GUIDELINE_NOTOOL,
    GUIDELINE_VCOT,
    SYSTEM_PROMPT_BASE,
    TOOL_SCHEMAS,
    assistant_message,
    build_messages,
    format_tool_call,
    observation_message,
    render,
    system_message,
)

# What qwen-agent's NousFnCallPrompt renders for the reference's two tools, written out in full:
# this text is an interface (the released checkpoints were trained on it).
EXPECTED_SYSTEM = (
    "You are a helpful assistant.\n\n# Tools\n\nYou may call one or more functions to assist with "
    "the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:"
    '\n<tools>\n{"type": "function", "function": {"name": "crop_image_normalized", "description": '
    '"Zoom in on the image based on the bounding box coordinates. It is useful when the object or '
    'text in the image is too small to be seen.", "parameters": {"type": "object", "properties": '
    '{"bbox_2d": {"type": "array", "description": "coordinates for bounding box of the area you '
    'want to zoom in. Values should be within [0.0,1.0].", "items": {"type": "number"}}, '
    '"target_image": {"type": "number", "description": "The index of the image to crop. Index '
    'from 1 to the number of images. Choose 1 to operate on original image."}}, "required": '
    '["bbox_2d", "target_image"]}}}\n{"type": "function", "function": {"name": "select_frames", '
    '"description": "Select frames from a video.", "parameters": {"type": "object", "properties": '
    '{"target_frames": {"type": "array", "description": "List of frame indices to select from the '
    'video (no more than 8 frames in total).", "items": {"type": "integer", "description": "Frame '
    'index from 1 to 16."}}}, "required": ["target_frames"]}}}\n</tools>\n\nFor each function '
    "call, return a json object with function name and arguments within <tool_call></tool_call> "
    'XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>"
)


def test_system_message_is_the_reference_text():
    assert system_message() == EXPECTED_SYSTEM
    assert system_message(tools=False) == SYSTEM_PROMPT_BASE == "You are a helpful assistant."


def test_tool_lines_are_the_schemas_as_json():
    block = system_message().split("<tools>\n")[1].split("\n</tools>")[0]
    assert [json.loads(line) for line in block.splitlines()] == [
        {"type": "function", "function": schema} for schema in TOOL_SCHEMAS
    ]
    assert [s["name"] for s in TOOL_SCHEMAS] == ["crop_image_normalized", "select_frames"]


def test_guidelines_are_spec_strings():
    assert GUIDELINE_VCOT == (
        "Guidelines: Understand the given visual information and the user query. Determine if it "
        "is beneficial to employ the given visual operations (tools). For a video, we can look "
        "closer by `select_frames`. For an image, we can look closer by `crop_image`. Reason with "
        "the visual information step by step, and put your final answer within \\boxed{}."
    )
    assert (
        GUIDELINE_NOTOOL == "Please think step by step, and put your final answer within \\boxed{}."
    )


def test_vcot_messages_with_images():
    messages = build_messages("How many cats?", images=["a.jpg", "b.jpg"])
    assert messages == [
        {"role": "system", "content": [{"type": "text", "text": EXPECTED_SYSTEM}]},
        {
            "role": "user",
            "content": [
                {"type": "image", "image": "a.jpg"},
                {"type": "image", "image": "b.jpg"},
                {"type": "text", "text": "How many cats?\n\n" + GUIDELINE_VCOT},
            ],
        },
    ]


def test_notool_messages_with_video():
    messages = build_messages("What happens?", video=["f1.jpg", "f2.jpg"], mode="notool")
    assert messages[0]["content"] == [{"type": "text", "text": "You are a helpful assistant."}]
    assert messages[1]["content"] == [
        {"type": "video", "video": ["f1.jpg", "f2.jpg"]},
        {"type": "text", "text": "What happens?\n\n" + GUIDELINE_NOTOOL},
    ]


def test_bad_prompt_arguments():
    with pytest.raises(ValueError, match="images or a video"):
        build_messages("q", images=["a.jpg"], video=["f.jpg"])
    with pytest.raises(ValueError, match="'vcot' or 'notool'"):
        build_messages("q", mode="cot")  # type: ignore[arg-type]


def test_format_tool_call_is_qwen_agent_format():
    text = format_tool_call(
        "crop_image_normalized", {"bbox_2d": [0.1, 0.2, 0.3, 0.4], "target_image": 1}
    )
    assert text == (
        '<tool_call>\n{"name": "crop_image_normalized", "arguments": {"bbox_2d": [0.1, 0.2, 0.3, 0.4], '
        '"target_image": 1}}\n</tool_call>'
    )


def test_observation_messages():
    session = Session(images=[Image.new("RGB", (300, 300), "white")])
    ok = session.execute(
        ToolCall("crop_image_normalized", {"bbox_2d": [0.1, 0.1, 0.6, 0.6], "target_image": 1})
    )
    # 300 px fits to 308 (11 patches); the padded box 0..0.7 is 216 px, resized to 224.
    message = observation_message(ok, image_refs=["crops/1.png"])
    assert message == {
        "role": "user",
        "content": [
            {"type": "text", "text": "\nHere is the cropped image (Image Size: 224x224):"},
            {"type": "image", "image": "crops/1.png"},
        ],
    }
    assert observation_message(ok)["content"][1]["image"] is ok.images[0]
    with pytest.raises(ValueError, match="1 images but 0 image_refs"):
        observation_message(ok, image_refs=[])
    failed = session.execute(ToolCall("select_frames", {"target_frames": [1]}))
    assert observation_message(failed)["content"] == [{"type": "text", "text": failed.text}]
    assert assistant_message("x<|im_end|>") == {
        "role": "assistant",
        "content": [{"type": "text", "text": "x"}],
    }


@pytest.mark.slow  # transformers import
def test_render_through_the_chat_template():
    from pixelctl.models import tiny
    from pixelctl.models.qwen import chat_template

    tokenizer = tiny.build_tokenizer(vocab_size=300, corpus="hello world " * 50)
    tokenizer.chat_template = chat_template()
    call = format_tool_call(
        "crop_image_normalized", {"bbox_2d": [0.1, 0.2, 0.3, 0.4], "target_image": 1}
    )
    messages = build_messages("What is on the sign?", images=["a.jpg"])
    messages.append(assistant_message("Look." + call + "<|im_end|>"))
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "\nHere is the cropped image (Image Size: 56x56):"},
                {"type": "image", "image": "c.jpg"},
            ],
        }
    )
    assert render(messages, tokenizer) == (
        f"<|im_start|>system\n{EXPECTED_SYSTEM}<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>What is on the sign?\n\n"
        f"{GUIDELINE_VCOT}<|im_end|>\n<|im_start|>assistant\nLook.{call}<|im_end|>\n"
        "<|im_start|>user\n\nHere is the cropped image (Image Size: 56x56):"
        "<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n"
    )
    video = build_messages("Q?", video=["f1.jpg", "f2.jpg"], mode="notool")
    assert render(video, tokenizer, add_generation_prompt=False) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|video_pad|><|vision_end|>Q?\n\n" + GUIDELINE_NOTOOL + "<|im_end|>\n"
    )
