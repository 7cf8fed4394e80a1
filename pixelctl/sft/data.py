"""From a recipe to the training rows: executor settings, records, the length filter, a Dataset.

The executor settings come from the recipe's `executor` block with the `train` pixel bounds, so
the images SFT trains on have the resolutions RL rollouts will produce.

Lengths are estimated without running the image processor (which would resize every image of
the data set once more): the text is rendered and tokenized with one `<|image_pad|>` per image,
then each image adds the visual tokens its fitted size gives under the processor's own clamp
(`smart_resize` with factor 28). Records over `sft.max_length` are skipped and reported;
truncating would cut image tokens away from their pixels.
"""

from __future__ import annotations

import math
from typing import Any

from pixelctl.sft.load import load_records
from pixelctl.sft.records import LoadResult, Record, Skipped


def executor_settings(recipe: Any) -> Any:
    """`ExecutorSettings` for SFT: the recipe's executor block with its train bounds."""
    return recipe.executor.settings("train")


def load_processor(recipe: Any, path: str | None = None) -> Any:
    """The model's processor, with the train preset's processor clamp applied when it sets one."""
    from transformers import AutoProcessor

    from pixelctl.models.resolve import resolve_model

    processor = AutoProcessor.from_pretrained(path or resolve_model(recipe.model.name_or_path))
    bounds = recipe.executor.bounds.train
    for part in (processor.image_processor, processor.video_processor):
        size = dict(part.size)
        if bounds.processor_min_pixels is not None:
            size["shortest_edge"] = bounds.processor_min_pixels
        if bounds.processor_max_pixels is not None:
            size["longest_edge"] = bounds.processor_max_pixels
        part.size = size
    return processor


def visual_tokens(width: int, height: int, processor: Any, frames: int = 1) -> int:
    """Tokens the processor emits for an image (or `frames` video frames) of this size."""
    from pixelctl.executor import visual_tokens

    size = processor.image_processor.size
    lo, hi = size["shortest_edge"], size["longest_edge"]
    per_frame = visual_tokens(height, width, lo, hi)
    return per_frame if frames == 1 else math.ceil(frames / 2) * per_frame


def estimate_length(record: Record, processor: Any, settings: Any) -> int:
    """Sequence length of `record` once rendered and tokenized, within a few tokens."""
    text_messages = []
    for m in record.messages:
        content = [it if it["type"] == "text" else {"type": it["type"]} for it in m["content"]]
        text_messages.append({"role": m["role"], "content": content})
    text = processor.apply_chat_template(text_messages, tokenize=False)
    n = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    n += sum(visual_tokens(w, h, processor) - 1 for w, h in record.sizes)
    for m in record.messages:
        for it in m["content"]:
            if it["type"] == "video":
                w, h = _frame_size(it, settings)
                n += visual_tokens(w, h, processor, frames=len(it["video"])) - 1
    return n


def _frame_size(item: dict, settings: Any) -> tuple[int, int]:
    from pixelctl.executor.images import prepare
    from pixelctl.sft.validate import bounds_for

    lo, hi = bounds_for("video", settings.bounds)
    im = prepare(
        item["video"][0],
        lo,
        hi,
        cap=settings.max_input_pixels,
        data_root=settings.data_root,
        fast=settings.fast_decode,
    )
    return im.size


def filter_length(result: LoadResult, processor: Any, settings: Any, max_length: int) -> None:
    """Move records longer than `max_length` tokens to `result.skipped` (in place)."""
    kept = []
    for r in result.records:
        n = estimate_length(r, processor, settings)
        if n > max_length:
            file, _, line = r.source.rpartition(":")
            result.skipped.append(
                Skipped(
                    file,
                    int(line),
                    r.id,
                    (
                        f"too long: about {n} tokens, over sft.max_length={max_length}; raise "
                        "sft.max_length or lower the pixel bounds"
                    ),
                )
            )
        else:
            kept.append(r)
    result.records = kept


def load_for_training(recipe: Any, processor: Any | None = None) -> LoadResult:
    """Every valid record of `recipe.sft.data`, with the too-long ones skipped if `processor`."""
    settings = executor_settings(recipe)
    result = load_records(recipe.sft.data, settings, recipe.sft.mask)
    if processor is not None:
        filter_length(result, processor, settings, recipe.sft.max_length)
    return result


def to_dataset(records: list[Record]) -> Any:
    """A `datasets.Dataset` of `Record.to_row()` rows (the collator loads images lazily)."""
    from datasets import Dataset

    rows = [r.to_row() for r in records]
    return Dataset.from_dict(
        {"images": [r["images"] for r in rows], "record": [r["record"] for r in rows]}
    )
