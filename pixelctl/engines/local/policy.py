"""The policy of the local engine: one transformers model that generates and is trained.

Token log-probabilities are computed on the conversation re-rendered through the chat template,
for the old and the new policy alike, so the PPO ratio compares the same tokens. Trained tokens
are every assistant turn (docs/method.md §5) — the same segmentation the SFT masks use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from pixelctl.backends.hf import HFGenerator
from pixelctl.masks import chat_tokens, label_mask

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Policy:
    def __init__(self, path: str, *, dtype: str, device: str, freeze_vision: bool, seed: int):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = torch.device(device)
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = AutoModelForImageTextToText.from_pretrained(path, dtype=_DTYPES[dtype]).to(
            self.device
        )
        if freeze_vision:
            for p in self.model.model.visual.parameters():
                p.requires_grad_(False)
        self.generator = HFGenerator(
            path, model=self.model, processor=self.processor, seed=seed, device=device
        )
        self.tokens = chat_tokens(self.processor.tokenizer)

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def encode(self, convs: Sequence[list[dict[str, Any]]]) -> tuple[dict, torch.Tensor]:
        """Whole trajectories → model inputs and the action mask (assistant tokens)."""
        batch = self.generator.encode(convs, prompt=False)
        mask = torch.zeros_like(batch["input_ids"], dtype=torch.bool)
        for row, conv in enumerate(convs):
            keep = batch["attention_mask"][row].bool()
            ids = batch["input_ids"][row][keep].tolist()
            roles = [m["role"] for m in conv]
            trained = [i for i, r in enumerate(roles) if r == "assistant"]
            mask[row, keep] = torch.tensor(label_mask(ids, roles, trained, self.tokens))
        return {k: v.to(self.device) for k, v in batch.items()}, mask.to(self.device)

    def logprobs(self, batch: dict, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probabilities of the sequence (position t scores token t) and the
        action mask aligned with them; position 0 has no prediction and is never trained."""
        logits = self.model(**batch).logits.float()
        ids = batch["input_ids"]
        lp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        return lp, mask[:, 1:]
