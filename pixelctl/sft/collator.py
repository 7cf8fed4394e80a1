"""Our collator: TRL's vision collator renders and tokenizes; we replace its labels with our masks.

TRL's `DataCollatorForVisionLanguageModeling` applies the chat template, runs the processor on
the images (and video frames) on the fly and pads. Its own `assistant_only_loss` needs
transformers ≥ 5.18 on image data and cannot select turns, so we ask it for plain labels and
overwrite them with `pixelctl.masks.label_mask`: only the selected assistant turns train.

Images are loaded here, each fitted to the executor's train bounds for its kind (input, crop,
frame, video frame), so SFT sees exactly the resolutions the executor produces in RL rollouts.
No truncation: records longer than `sft.max_length` were skipped (and reported) when loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from pixelctl.masks import MaskMode, chat_tokens, label_mask, trained_turns
from pixelctl.sft.records import Record
from pixelctl.sft.validate import bounds_for


def load_visuals(record: Record, settings: Any) -> tuple[list[dict], list[Any]]:
    """TRL-ready messages (image placeholders, videos as frame lists) and the fitted images."""
    from pixelctl.executor.images import prepare

    def fitted(path: str, kind: str) -> Any:
        lo, hi = bounds_for(kind, settings.bounds)
        return prepare(
            path,
            lo,
            hi,
            cap=settings.max_input_pixels,
            data_root=settings.data_root,
            fast=settings.fast_decode,
        )

    messages, images = [], []
    for m in record.messages:
        content = []
        for item in m["content"]:
            if item["type"] == "image":
                images.append(fitted(item["image"], item.get("kind", "input")))
                content.append({"type": "image"})
            elif item["type"] == "video":
                frames = [fitted(p, "video") for p in item["video"]]
                content.append({"type": "video", "video": frames})
            else:
                content.append({"type": "text", "text": item["text"]})
        messages.append({"role": m["role"], "content": content})
    return messages, images


@dataclass
class PixelCollator(DataCollatorForVisionLanguageModeling):
    """Collates `Record.to_row()` rows; labels follow `mask` (see pixelctl.masks)."""

    mask: MaskMode = "last_two_assistant"
    settings: Any = None  # pixelctl.executor.ExecutorSettings with the train bounds

    def __post_init__(self) -> None:
        self.max_length = None  # never truncate: image tokens would lose their pixels
        self.assistant_only_loss = False
        self._tokens = chat_tokens(self.processor.tokenizer)

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        records = [Record.from_row(e) for e in examples]
        prepared = []
        for r in records:
            messages, images = load_visuals(r, self.settings)
            prepared.append({"messages": messages, "images": images})
        out = super().torch_call(prepared)
        out["labels"] = self.labels(out["input_ids"], out["attention_mask"], records)
        return out

    def labels(
        self, input_ids: torch.Tensor, attention: torch.Tensor, records: list[Record]
    ) -> torch.Tensor:
        """-100 everywhere except the trained tokens of each row."""
        labels = torch.full_like(input_ids, -100)
        for row, r in enumerate(records):
            n = int(attention[row].sum())  # right padding: the first n tokens are real
            ids = input_ids[row, :n].tolist()
            trained = trained_turns(r.roles, self.mask, r.error_turns)
            keep = torch.tensor(label_mask(ids, r.roles, trained, self._tokens), dtype=torch.bool)
            labels[row, :n][keep] = input_ids[row, :n][keep]
        return labels
