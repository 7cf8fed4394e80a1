"""The tiny offline Qwen2.5-VL: build → reload → chat format → forward/backward → generate,
determinism, and model-name resolution (builtin cache, local folders, no hub)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixelctl.models import resolve as models
from pixelctl.models import tiny
from pixelctl.models.resolve import BUILTIN_MODELS, build_once, builtin_model_dir, resolve_model

TOOL_BLOCK = (
    "You are a helpful assistant.\n\n# Tools\n\nYou may call one or more functions to assist "
    "with the user query.\n\n<tools>\n"
    '{"type": "function", "function": {"name": "crop_image_normalized"}}\n</tools>'
)
GUIDELINE = (
    "Guidelines: Understand the given visual information and the user query. Determine if it "
    "is beneficial to employ the given visual operations (tools). For a video, we can look "
    "closer by `select_frames`. For an image, we can look closer by `crop_image`. Reason with "
    "the visual information step by step, and put your final answer within \\boxed{}."
)
CALL = (
    "The sign is small.<tool_call>\n"
    '{"name": "crop_image_normalized", "arguments": {"bbox_2d": [0.1, 0.2, 0.6, 0.7], '
    '"target_image": 1}}\n</tool_call>'
)
OBSERVATION = "\nHere is the cropped image (Image Size: 56x56):"
QUESTION = "What is written on the sign?\n\n" + GUIDELINE

# docs/method.md §3: system tool block; user image + question; assistant tool call; user observation.
CONVERSATION = [
    {"role": "system", "content": [{"type": "text", "text": TOOL_BLOCK}]},
    {
        "role": "user",
        "content": [{"type": "image", "image": "x.png"}, {"type": "text", "text": QUESTION}],
    },
    {"role": "assistant", "content": [{"type": "text", "text": CALL}]},
    {
        "role": "user",
        "content": [{"type": "text", "text": OBSERVATION}, {"type": "image", "image": "c.png"}],
    },
]
EXPECTED_RENDER = (
    "<|im_start|>system\n" + TOOL_BLOCK + "<|im_end|>\n"
    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>" + QUESTION + "<|im_end|>\n"
    "<|im_start|>assistant\n" + CALL + "<|im_end|>\n"
    "<|im_start|>user\n" + OBSERVATION + "<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n"
    "<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(tiny_model_dir)


def _images():
    from PIL import Image

    # 112x84 → grid 6x8 patches → 12 merged tokens; 56x56 → 4x4 → 4 tokens.
    return [Image.new("RGB", (112, 84), (200, 30, 30)), Image.new("RGB", (56, 56), (30, 200, 30))]


def _inputs(processor):
    text = processor.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    return processor(text=[text], images=_images(), return_tensors="pt")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- chat format and tokenizer ---------------------------------------------------------------


@pytest.mark.slow
def test_chat_template_renders_qwen25vl_format(processor):
    rendered = processor.apply_chat_template(
        CONVERSATION, tokenize=False, add_generation_prompt=True
    )
    assert rendered == EXPECTED_RENDER


@pytest.mark.slow
def test_chat_template_default_system_string_content_and_video(processor):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {
            "role": "user",
            "content": [{"type": "video", "video": ["f1.png"]}, {"type": "text", "text": "Why?"}],
        },
    ]
    rendered = processor.apply_chat_template(messages, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Why?<|im_end|>\n"
    )


@pytest.mark.slow
def test_special_tokens_match_qwen(processor):
    tok = processor.tokenizer
    ids = tiny.token_ids(tok)
    assert len(set(ids.values())) == len(tiny.SPECIAL_TOKENS) + len(tiny.TOOL_TOKENS)
    for token, token_id in ids.items():
        assert tok.encode(token, add_special_tokens=False) == [token_id]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    text = CALL + "<|im_end|>"
    decoded = tok.decode(tok.encode(text), skip_special_tokens=True)
    assert decoded == CALL  # <tool_call> markers are kept, <|im_end|> is dropped


@pytest.mark.slow
def test_prompt_strings_tokenize_compactly(processor):
    tok = processor.tokenizer
    assert len(tok.encode("crop_image_normalized")) <= 4
    assert len(tok.encode("\\boxed{}")) <= 3
    assert len(tok.encode("You are a helpful assistant.")) <= 6
    # Untrained byte-level BPE would need one token per byte.
    assert len(tok.encode(GUIDELINE)) < len(GUIDELINE) / 3


@pytest.fixture(scope="module")
def tokenizer(processor):
    return processor.tokenizer


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_any_text_round_trips(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


WORDS = ("circle", "square", "star", "left", "right")


@pytest.fixture(scope="module")
def worded():
    return tiny.build_tokenizer(words=WORDS)


def test_whole_words_are_one_token_after_a_space_a_brace_and_before_punctuation(tokenizer, worded):
    # the plain tokenizer spells the boxed word in pieces unlike the sentence's word
    assert tokenizer.tokenize("{square}") == ["{", "s", "qu", "are", "}"]
    assert tokenizer.tokenize(" square") == ["Ġsquare"]
    text = "It shows a square. So the answer is square.\n\n\\boxed{square}"
    pieces = worded.tokenize(text)
    assert pieces.count("square") == 3 and "Ġsquare" not in pieces
    assert worded.tokenize("{star}") == ["{", "star", "}"]
    # inside a longer word it is not matched: `start`, `leftover`, `bright` keep their BPE pieces
    for word in ("start", "leftover", "bright", "circles"):
        assert worded.tokenize(word) == tokenizer.tokenize(word)
    assert len(worded) == len(tokenizer) + len(WORDS)


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from([*WORDS, " ", "{", "}", ".", "\n", "starts", "a", "\\boxed", "é"]),
        max_size=12,
    )
)
def test_worded_tokenizer_round_trips_and_keeps_each_word_whole(worded, parts):
    text = "".join(parts)
    assert worded.decode(worded.encode(text)) == text
    ids = dict(zip(WORDS, worded.convert_tokens_to_ids(list(WORDS)), strict=True))
    encoded = worded.encode(text)
    for word, id_ in ids.items():  # one id per occurrence that stands as a whole word
        assert encoded.count(id_) == len(re.findall(rf"(?<!\w){word}(?!\w)", text))


# --- the model -------------------------------------------------------------------------------


@pytest.mark.slow
def test_config_shapes(model, processor):
    text = model.config.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    assert text.vocab_size == len(processor.tokenizer)
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    assert model.config.vision_config.out_hidden_size == text.hidden_size
    ids = tiny.token_ids(processor.tokenizer)
    for cfg in (model.config, text):
        assert cfg.image_token_id == ids["<|image_pad|>"]
        assert cfg.video_token_id == ids["<|video_pad|>"]
    assert 200_000 <= sum(p.numel() for p in model.parameters()) <= 1_000_000


def test_demo_builtin_is_the_default_twice_as_wide_with_rope_theta_1e4(
    processor, monkeypatch, tmp_path
):
    from pixelctl.models import perception
    from pixelctl.synth.procedural import ANSWER_WORDS

    calls = []

    def build(out, **kw):
        calls.append(("build", kw))
        (out / tiny.BUILD_INFO_FILE).write_text('{"builder": "pixelctl.models.tiny"}')

    monkeypatch.setattr(tiny, "build_tiny_model", build)
    monkeypatch.setattr(
        perception, "pretrain", lambda out, **kw: calls.append(("pretrain",)) or {"s": 1}
    )
    models._builder("tiny-qwen2.5-vl-demo")(tmp_path)
    # the random init, then the perception pretraining, recorded in the build info
    assert calls == [
        ("build", {"head_dim": 32, "rope_theta": 1e4, "words": ANSWER_WORDS}),
        ("pretrain",),
    ]
    info = json.loads((tmp_path / tiny.BUILD_INFO_FILE).read_text())
    assert info == {"builder": "pixelctl.models.tiny", "perception": {"s": 1}}
    assert {"square", "star", "left", "right", "black"} <= set(ANSWER_WORDS)
    assert builtin_model_dir("tiny-qwen2.5-vl-demo").name == "tiny-qwen2.5-vl-demo-v3"
    config = tiny.build_config(processor.tokenizer, head_dim=32, rope_theta=1e4)
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.intermediate_size, text.num_hidden_layers) == (128, 256, 2)
    assert text.rope_parameters["rope_theta"] == 1e4
    assert text.rope_parameters["mrope_section"] == [4, 6, 6]  # Qwen's 2:3:3 over 16 freqs
    assert (vision.depth, vision.hidden_size, vision.out_hidden_size) == (1, 64, 128)
    default = tiny.build_config(processor.tokenizer).text_config
    assert (default.hidden_size, default.rope_parameters["rope_theta"]) == (64, 1e6)


@pytest.mark.slow
def test_processor_expands_image_tokens(processor):
    inputs = _inputs(processor)
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert inputs["image_grid_thw"].tolist() == [[1, 6, 8], [1, 4, 4]]
    assert int((inputs["input_ids"] == image_id).sum()) == 12 + 4


@pytest.mark.slow
def test_forward_backward_reaches_vision_and_text(model, processor):
    inputs = _inputs(processor)
    labels = inputs["input_ids"].clone()
    labels[labels == model.config.image_token_id] = -100
    model.zero_grad()
    loss = model(**inputs, labels=labels).loss
    # Random init predicts roughly uniformly: loss ≈ ln(vocab).
    assert math.isfinite(loss.item())
    assert abs(loss.item() - math.log(model.config.text_config.vocab_size)) < 1.0
    loss.backward()
    vision_grad = model.model.visual.patch_embed.proj.weight.grad
    assert vision_grad is not None and vision_grad.abs().sum() > 0
    text_grad = model.model.language_model.layers[0].self_attn.q_proj.weight.grad
    assert text_grad is not None and text_grad.abs().sum() > 0
    assert model.lm_head.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_generate_returns_new_tokens_greedily(model, processor):
    inputs = _inputs(processor)
    prompt_len = inputs["input_ids"].shape[1]
    first = model.generate(**inputs, max_new_tokens=8)
    second = model.generate(**inputs, max_new_tokens=8)
    new = first[0, prompt_len:]
    assert 1 <= len(new) <= 8
    assert int(new.max()) < model.config.text_config.vocab_size
    assert first.tolist() == second.tolist()  # generation_config is greedy


@pytest.mark.slow
def test_video_forward(model, processor):
    from PIL import Image

    messages = [
        {
            "role": "user",
            "content": [{"type": "video", "video": []}, {"type": "text", "text": "What?"}],
        }
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    frames = [Image.new("RGB", (84, 56), (i * 15, 0, 0)) for i in range(16)]
    inputs = processor(text=[text], videos=[frames], return_tensors="pt")
    # 16 frames / temporal patch 2 = 8; 56x84 px → 4x6 patches → 6 merged tokens per step.
    assert inputs["video_grid_thw"].tolist() == [[8, 4, 6]]
    assert math.isfinite(model(**inputs, labels=inputs["input_ids"]).loss.item())


# --- determinism and build options -----------------------------------------------------------


@pytest.mark.slow
def test_same_seed_gives_identical_files(tiny_model_dir, tmp_path):
    again = tiny.build_tiny_model(tmp_path / "again", seed=0)
    other = tiny.build_tiny_model(tmp_path / "other", seed=1)
    names = sorted(p.name for p in tiny_model_dir.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert _sha(tiny_model_dir / name) == _sha(again / name), name
    assert _sha(other / "model.safetensors") != _sha(tiny_model_dir / "model.safetensors")
    assert _sha(other / "tokenizer.json") == _sha(tiny_model_dir / "tokenizer.json")


@pytest.mark.slow
def test_pixel_bounds_are_build_args(tiny_model_dir, tmp_path):
    def sizes(folder: Path) -> tuple[dict, dict]:
        cfg = json.loads((folder / "processor_config.json").read_text())
        return cfg["image_processor"]["size"], cfg["video_processor"]["size"]

    default = tiny.TinyBuildArgs()
    assert sizes(tiny_model_dir) == (
        {"shortest_edge": default.image_min_pixels, "longest_edge": default.image_max_pixels},
        {"shortest_edge": default.video_min_pixels, "longest_edge": default.video_max_pixels},
    )
    custom = tiny.build_tiny_model(
        tmp_path / "custom", image_max_pixels=64 * 784, video_min_pixels=8 * 784
    )
    image_size, video_size = sizes(custom)
    assert image_size["longest_edge"] == 64 * 784
    assert video_size["shortest_edge"] == 8 * 784


# --- resolve_model -----------------------------------------------------------------------------


def _fake_build(out_dir: Path, marker: str = "fake") -> Path:
    (out_dir / "config.json").write_text(json.dumps({"marker": marker}))
    (out_dir / tiny.BUILD_INFO_FILE).write_text("{}")
    return out_dir


def test_builtin_is_built_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELCTL_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(tiny, "build_tiny_model", lambda d: calls.append(d) or _fake_build(d))
    first = resolve_model("builtin:tiny-qwen2.5-vl")
    second = resolve_model("builtin:tiny-qwen2.5-vl")
    assert first == second == str(tmp_path / f"tiny-qwen2.5-vl-v{tiny.TINY_BUILD_VERSION}")
    assert len(calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [Path(first).name]  # no temp leftovers


@pytest.mark.slow
def test_builtin_resolves_to_loadable_model(tmp_path, monkeypatch):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    monkeypatch.setenv("PIXELCTL_CACHE", str(tmp_path))
    path = resolve_model("builtin:tiny-qwen2.5-vl")
    assert (
        Qwen2_5_VLForConditionalGeneration.from_pretrained(path).config.model_type == "qwen2_5_vl"
    )
    assert AutoProcessor.from_pretrained(path).tokenizer.eos_token == "<|im_end|>"


def test_concurrent_builds_leave_one_complete_copy(tmp_path):
    final = tmp_path / "cache" / "model-v1"
    barrier = threading.Barrier(2)
    results: dict[str, Path] = {}

    def racer(name: str) -> None:
        def build(out_dir: Path) -> Path:
            barrier.wait(timeout=10)  # both builds are in flight before either renames
            return _fake_build(out_dir, marker=name)

        results[name] = build_once(final, build)

    threads = [threading.Thread(target=racer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"a": final, "b": final}
    assert json.loads((final / "config.json").read_text())["marker"] in {"a", "b"}
    assert [p.name for p in final.parent.iterdir()] == ["model-v1"]


def test_incomplete_cache_folder_is_reported(tmp_path):
    final = tmp_path / "model-v1"
    final.mkdir()
    (final / "config.json").write_text("{}")  # a crashed, non-atomic copy
    with pytest.raises(RuntimeError, match="not a complete build"):
        build_once(final, _fake_build)
    assert [p.name for p in tmp_path.iterdir()] == ["model-v1"]


def test_local_folder_is_returned_as_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == str(tmp_path)


def test_run_directory_resolves_to_its_model(tmp_path):
    for name in ("round-00002", "round-00010"):
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
        (tmp_path / "checkpoints" / name / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == str(tmp_path / "checkpoints" / "round-00010")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == str(tmp_path / "model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no model in it"):
        resolve_model(str(tmp_path / "empty"))


def test_hub_id_is_refused_with_guidance():
    with pytest.raises(ValueError, match="no model hub access") as err:
        resolve_model("Qwen/Qwen2.5-VL-7B-Instruct")
    assert "model.name_or_path" in str(err.value)
    assert "builtin:tiny-qwen2.5-vl" in str(err.value)


def test_unknown_builtin_lists_available():
    with pytest.raises(ValueError, match=r"available: builtin:tiny-qwen2\.5-vl"):
        resolve_model("builtin:huge-model")


def test_file_path_is_refused(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_text("")
    with pytest.raises(ValueError, match="is a file"):
        resolve_model(str(file))


def test_cache_root_and_listing(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELCTL_CACHE", str(tmp_path))
    assert models.cache_root() == tmp_path
    assert builtin_model_dir("tiny-qwen2.5-vl").parent == tmp_path
    monkeypatch.delenv("PIXELCTL_CACHE")
    assert models.cache_root() == Path.home() / ".cache" / "pixelctl"
    assert "tiny-qwen2.5-vl" in BUILTIN_MODELS


def test_models_module_has_no_heavy_imports():
    code = (
        "import sys, pixelctl.models; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
