"""Batched generation with transformers, as the rollout agent's `generate` function.

Conversations arrive in Qwen message format with PIL images already fitted to the executor's
bounds, so by default the processor does not resize them again: the model sees exactly the
pixels the executor crops from (eval's processor clamp, the reference's 401,408…4,014,080 px,
wraps this function: `evaluation.chunks.ProcessorClamp`).
Batches are left-padded and grouped by sampling settings (the reference lowers the
temperature after a tool call, so one batch can hold two temperatures).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pixelctl.agent import Generation, Sampling


def visuals(messages: list[dict[str, Any]]) -> tuple[list[Any], list[list[Any]]]:
    """The images and videos of a conversation, in the order the chat template places them."""
    images, videos = [], []
    for message in messages:
        content = message["content"]
        for item in content if isinstance(content, list) else ():
            if item.get("type") == "image":
                images.append(item["image"])
            elif item.get("type") == "video":
                videos.append(list(item["video"]))
    return images, videos


class HFGenerator:
    """`generate(convs, samplings) -> [Generation]` over a Qwen2.5-VL checkpoint."""

    def __init__(
        self,
        model_path: str,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        seed: int = 0,
        batch_size: int = 8,
        model: Any = None,
        processor: Any = None,
    ) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from pixelctl.models.resolve import resolve_model

        path = resolve_model(model_path) if model is None or processor is None else model_path
        self.device = torch.device(device)
        self.processor = processor or AutoProcessor.from_pretrained(path)
        self.processor.tokenizer.padding_side = "left"
        self.model = model or AutoModelForImageTextToText.from_pretrained(
            path, dtype=getattr(torch, dtype)
        ).to(self.device)
        self.batch_size = batch_size
        self.image_kwargs: dict[str, Any] = {"do_resize": False}
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.seed = seed

    def encode(self, convs: Sequence[list[dict[str, Any]]], *, prompt: bool = True) -> Any:
        """Tokenize conversations with their images: for generation (`prompt=True`, ending in
        the assistant header) or, for training, as the whole trajectory."""
        texts = [
            self.processor.apply_chat_template(c, tokenize=False, add_generation_prompt=prompt)
            for c in convs
        ]
        images, videos = [], []
        for conv in convs:
            im, vi = visuals(conv)
            images += im
            videos += vi
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
            kwargs["images_kwargs"] = self.image_kwargs
        if videos:
            kwargs["videos"] = videos
            kwargs["videos_kwargs"] = {**self.image_kwargs, "do_sample_frames": False}
        return self.processor(**kwargs)

    def __call__(
        self, convs: Sequence[list[dict[str, Any]]], samplings: Sequence[Sampling]
    ) -> list[Generation]:
        out: list[Generation | None] = [None] * len(convs)
        groups: dict[Sampling, list[int]] = {}
        for i, s in enumerate(samplings):
            groups.setdefault(s, []).append(i)
        for sampling, idx in groups.items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                for i, gen in zip(
                    chunk, self._generate([convs[i] for i in chunk], sampling), strict=True
                ):
                    out[i] = gen
        return out  # type: ignore[return-value]

    def _generate(self, convs: list[list[dict[str, Any]]], sampling: Sampling) -> list[Generation]:
        import torch

        batch = self.encode(convs).to(self.device)
        tok = self.processor.tokenizer
        kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "do_sample": False}
        if not sampling.greedy:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            # sampling draws from torch's global RNG; seed it from our generator so a run is
            # reproducible from the recipe seed whatever ran before
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator)))
        with torch.no_grad():
            ids = self.model.generate(
                **batch, **kwargs, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
            )
        prompt_len = batch["input_ids"].shape[1]
        prompt_tokens = batch["attention_mask"].sum(dim=1).tolist()
        gens = []
        for row, n_prompt in zip(ids[:, prompt_len:], prompt_tokens, strict=True):
            keep = row[row != tok.pad_token_id]
            n_new = int((keep != tok.eos_token_id).sum()) + int((keep == tok.eos_token_id).any())
            text = tok.decode(keep, skip_special_tokens=True)
            gens.append(Generation(text, int(n_prompt), n_new))
        return gens
