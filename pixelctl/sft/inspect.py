"""`pixelctl sft RECIPE --inspect N`: see exactly which tokens are trained before paying for GPUs.

Each example is the collator's real output (same template, images, masks as training) decoded
back to text: trained tokens highlighted, masked tokens dimmed, and each image or video shown as
one placeholder with its size and token count instead of hundreds of `<|image_pad|>` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pixelctl.models.qwen import VISION_END, VISION_START

TRAINED_STYLE = "bold black on green"
MASKED_STYLE = "dim"
VISUAL_STYLE = "bold magenta"


@dataclass(frozen=True)
class Piece:
    text: str
    kind: str  # "trained", "masked" or "visual"


def pieces(
    ids: list[int], trained: list[bool], tokenizer: Any, visual_sizes: list[str]
) -> list[Piece]:
    """Runs of decoded text by kind; each `<|vision_start|>…<|vision_end|>` becomes one piece."""
    start_id = tokenizer.convert_tokens_to_ids(VISION_START)
    end_id = tokenizer.convert_tokens_to_ids(VISION_END)
    out: list[Piece] = []
    run: list[int] = []
    run_kind = ""
    sizes = iter(visual_sizes)
    i = 0

    def flush() -> None:
        if run:
            out.append(Piece(tokenizer.decode(run, skip_special_tokens=False), run_kind))
            run.clear()

    while i < len(ids):
        if ids[i] == start_id:
            j = ids.index(end_id, i) if end_id in ids[i:] else len(ids) - 1
            flush()
            label = next(sizes, "?")
            out.append(Piece(f"[{label} · {j - i - 1} tokens]", "visual"))
            i = j + 1
            continue
        kind = "trained" if trained[i] else "masked"
        if kind != run_kind:
            flush()
            run_kind = kind
        run.append(ids[i])
        i += 1
    flush()
    return out


def visual_labels(messages: list[dict], images: list[Any]) -> list[str]:
    """Labels like `image 84x84` or `video 8 frames 56x56`, one per visual, in order."""
    labels, stills = [], iter(images)
    for m in messages:
        for item in m["content"]:
            if item["type"] == "image":
                im = next(stills)
                labels.append(f"image {im.width}x{im.height}")
            elif item["type"] == "video":
                f = item["video"][0]
                labels.append(f"video {len(item['video'])} frames {f.width}x{f.height}")
    return labels


def render(record: Any, collator: Any) -> tuple[list[Piece], int, int]:
    """Pieces of one record, its trained token count and its length."""
    from pixelctl.sft.collator import load_visuals

    out = collator([record.to_row()])
    ids = out["input_ids"][0].tolist()
    trained = (out["labels"][0] != -100).tolist()
    messages, images = load_visuals(record, collator.settings)
    labels = visual_labels(messages, images)
    return pieces(ids, trained, collator.processor.tokenizer, labels), sum(trained), len(ids)


def inspect(loaded: Any, n: int, console: Any) -> None:
    """Render the first `n` valid records of the recipe's data with their loss masks."""
    from rich.rule import Rule
    from rich.text import Text

    from pixelctl.sft.collator import PixelCollator
    from pixelctl.sft.data import executor_settings, load_for_training, load_processor
    from pixelctl.sft.report import show_data

    recipe = loaded.recipe
    processor = load_processor(recipe)
    result = load_for_training(recipe, processor)
    show_data(result, console)
    collator = PixelCollator(processor, mask=recipe.sft.mask, settings=executor_settings(recipe))
    legend = Text.assemble(
        ("trained", TRAINED_STYLE),
        "  ",
        ("masked", MASKED_STYLE),
        "  ",
        ("[image WxH · tokens]", VISUAL_STYLE),
    )
    console.print(Text("legend: ") + legend)
    styles = {"trained": TRAINED_STYLE, "masked": MASKED_STYLE, "visual": VISUAL_STYLE}
    plain = console.color_system is None  # piped or NO_COLOR: mark trained text with «»
    if plain:
        console.print("(no colour: trained text is shown «like this»)")
    for record in result.records[:n]:
        parts, n_trained, length = render(record, collator)
        title = (
            f"{record.id} · {record.kind or 'released'} · mask {recipe.sft.mask} · "
            f"{n_trained}/{length} tokens trained"
        )
        console.print(Rule(title))
        shown = [
            (f"«{p.text}»" if plain and p.kind == "trained" else p.text, styles[p.kind])
            for p in parts
        ]
        console.print(Text.assemble(*shown))
