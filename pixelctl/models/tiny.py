"""A tiny random-init Qwen2.5-VL, built offline and deterministically from a seed.

Tests, demos and CPU smoke runs need a model with the exact Qwen2.5-VL interface (the real
`Qwen2_5_VLForConditionalGeneration`, `Qwen2_5_VLProcessor`, chat format and special tokens)
but without hub access or gigabytes of weights. `build_tiny_model` makes one:

1. a byte-level BPE tokenizer trained on `assets/tiny_tokenizer_corpus.txt` (prompt wording, tool
   calls, numbers, colours, shapes), with Qwen's pre-tokenizer split, Qwen's special-token
   strings, and `<tool_call>`/`</tool_call>` as added tokens that are not special (so
   `decode(skip_special_tokens=True)` keeps them, as Qwen does). Unlike Qwen it has no NFC
   normalizer, so every string round-trips through encode→decode exactly;
2. a `Qwen2_5_VLProcessor` (image + video processors) with small pixel bounds, and the
   Qwen2.5-VL-Instruct chat template (`pixelctl.models.qwen`);
3. a `Qwen2_5_VLConfig` (text: hidden 64, 2 layers, 4 heads / 2 kv heads; vision: depth 1,
   hidden 32) with random weights drawn under `torch.manual_seed(seed)`;

all written with `save_pretrained`, so `from_pretrained(out_dir)` works like a hub folder.
Same seed → byte-identical files. Bump `TINY_BUILD_VERSION` whenever the output changes, so
cached builds (see `pixelctl.models.resolve`) are rebuilt.

Heavy imports (torch, transformers, tokenizers) happen inside the functions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pixelctl.models.qwen import (
    ASSETS,
    ENDOFTEXT,
    IM_END,
    IMAGE_PAD,
    PIXEL_UNIT,
    SPECIAL_TOKENS,
    TOOL_TOKENS,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    chat_template,
)

TINY_BUILD_VERSION = "1"
CORPUS_PATH = ASSETS / "tiny_tokenizer_corpus.txt"
BUILD_INFO_FILE = "pixelctl_tiny.json"  # written last: its presence marks a complete build

# Qwen2's pre-tokenizer split: contractions, letter runs, single digits, punctuation runs,
# newlines, spaces. Digits stay single so numbers never merge into odd chunks.
QWEN_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass(frozen=True)
class TinyBuildArgs:
    """Everything that shapes the build; saved next to the model for provenance.

    Pixel bounds are the processor's own clamp (smart_resize). The defaults allow 4..256
    merged vision tokens per image or video frame, cheap on CPU; the executor resizes images
    within its own bounds before they reach the processor, so raise `*_max_pixels` if those
    bounds are larger, or the processor will shrink the images a second time.
    """

    seed: int = 0
    vocab_size: int = 2048  # upper bound: the small corpus stops BPE earlier
    image_min_pixels: int = 4 * PIXEL_UNIT
    image_max_pixels: int = 256 * PIXEL_UNIT
    video_min_pixels: int = 4 * PIXEL_UNIT
    video_max_pixels: int = 256 * PIXEL_UNIT


def build_tiny_model(
    out_dir: Path,
    *,
    seed: int = 0,
    image_min_pixels: int = TinyBuildArgs.image_min_pixels,
    image_max_pixels: int = TinyBuildArgs.image_max_pixels,
    video_min_pixels: int = TinyBuildArgs.video_min_pixels,
    video_max_pixels: int = TinyBuildArgs.video_max_pixels,
    head_dim: int = 16,
    rope_theta: float = 1e6,
    words: tuple[str, ...] = (),
) -> Path:
    """Build and save the tiny model, processor, tokenizer and generation config into out_dir.

    `head_dim=64` gives text and vision attention heads of 64 (vLLM's kernels need such
    sizes; `builtin:tiny-qwen2.5-vl-h64`, the GPU smoke's model). `head_dim=32,
    rope_theta=1e4` is `builtin:tiny-qwen2.5-vl-demo`: twice the width, and rotary
    frequencies that still tell neighbouring tokens apart over a ~1,000-token conversation.
    `words` become whole-word tokens (`build_tokenizer`)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    args = TinyBuildArgs(
        seed=seed,
        image_min_pixels=image_min_pixels,
        image_max_pixels=image_max_pixels,
        video_min_pixels=video_min_pixels,
        video_max_pixels=video_max_pixels,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_size=args.vocab_size, words=words)
    processor = build_processor(tokenizer, args)
    config = build_config(tokenizer, head_dim, rope_theta)
    # fork_rng: building must not disturb the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = build_generation_config(tokenizer)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    info = {"builder": "pixelctl.models.tiny", "build_version": TINY_BUILD_VERSION, **asdict(args)}
    if head_dim != 16:
        info["head_dim"] = head_dim
    if rope_theta != 1e6:
        info["rope_theta"] = rope_theta
    if words:
        info["words"] = list(words)
    (out_dir / BUILD_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return out_dir


def add_build_info(out_dir: Path, **fields: Any) -> None:
    """Record later build steps (the demo model's pretraining) next to the builder's own info."""
    path = Path(out_dir) / BUILD_INFO_FILE
    info = {**json.loads(path.read_text()), **fields}
    path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def build_tokenizer(
    vocab_size: int = TinyBuildArgs.vocab_size,
    corpus: str | None = None,
    words: tuple[str, ...] = (),
) -> Any:
    """Train the byte-level BPE and wrap it as a transformers fast tokenizer.

    Each of `words` becomes one token wherever it stands as a whole word: ` square`, `{square}`
    and `square.` all carry the same id (`start` is untouched). The small corpus's BPE leaves
    most words in pieces and spells a word differently after a space and after `{` (` square`
    vs `s`,`qu`,`are`), so an answer in `\\boxed{}` would be a different token sequence from the
    same word in the sentence before it; Qwen's own vocabulary has such words whole."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = CORPUS_PATH.read_text(encoding="utf-8") if corpus is None else corpus
    backend = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        # All 256 byte symbols, so any input encodes without an unknown token.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
    )
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TOKENS])
    backend.add_tokens(
        [AddedToken(w, special=False, normalized=False, single_word=True) for w in words]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=None,
        bos_token=None,
        model_max_length=131072,  # as Qwen2.5-VL's; padding side stays the default (right)
        clean_up_tokenization_spaces=False,
    )


def build_processor(tokenizer: Any, args: TinyBuildArgs) -> Any:
    """Wrap the tokenizer with Qwen2-VL image and video processors and the chat template."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    image_processor = Qwen2VLImageProcessor(
        min_pixels=args.image_min_pixels, max_pixels=args.image_max_pixels
    )
    video_processor = Qwen2VLVideoProcessor(
        min_pixels=args.video_min_pixels, max_pixels=args.video_max_pixels
    )
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=chat_template(),
    )


def token_ids(tokenizer: Any) -> dict[str, int]:
    """Ids of the special and tool tokens, keyed by their string."""
    return {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS + TOOL_TOKENS}


def build_config(tokenizer: Any, head_dim: int = 16, rope_theta: float = 1e6) -> Any:
    """The tiny Qwen2.5-VL config; vocab = tokenizer size, Qwen's special ids wired in.
    `head_dim` 16 (default), 32 (the demo's) or 64 (4 text heads of 64, 2 vision heads of 64);
    `rope_theta` Qwen's 1e6 by default."""
    from transformers import Qwen2_5_VLConfig

    ids = token_ids(tokenizer)
    special = {
        "image_token_id": ids[IMAGE_PAD],
        "video_token_id": ids[VIDEO_PAD],
        "vision_start_token_id": ids[VISION_START],
        "vision_end_token_id": ids[VISION_END],
    }
    eos_pad = {
        "bos_token_id": ids[ENDOFTEXT],
        "eos_token_id": ids[IM_END],
        "pad_token_id": ids[ENDOFTEXT],
    }
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": 4 * head_dim,
        "intermediate_size": 8 * head_dim,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        # head_dim 16 → 8 rotary frequencies split over (time, height, width), Qwen's 2:3:3.
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": rope_theta,
            "mrope_section": [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16],
        },
        **eos_pad,
        **special,
    }
    vision_config = {
        "depth": 1,
        "hidden_size": 2 * head_dim,
        "intermediate_size": 4 * head_dim,
        "num_heads": 2,
        "out_hidden_size": 4 * head_dim,  # must equal the text hidden size
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [0],
        "tokens_per_second": 2,
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        tie_word_embeddings=False,
        **special,
    )


def build_generation_config(tokenizer: Any) -> Any:
    """Greedy by default (deterministic tests); stops on <|im_end|> or <|endoftext|> like Qwen."""
    from transformers import GenerationConfig

    ids = token_ids(tokenizer)
    return GenerationConfig(
        bos_token_id=ids[ENDOFTEXT],
        eos_token_id=[ids[IM_END], ids[ENDOFTEXT]],
        pad_token_id=ids[ENDOFTEXT],
        do_sample=False,
    )
