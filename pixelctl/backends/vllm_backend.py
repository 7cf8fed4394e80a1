"""Batched generation with vLLM's offline engine (GPU). UNTESTED ON GPU in this repository.

Written against vLLM's offline `LLM.generate` API (0.29): prompts are rendered with the
model's own chat template (through its processor) and passed as
`{"prompt": text, "multi_modal_data": {"image": [PIL, …]} | {"video": [frames array]}}`.
The eval pixel bounds reach the engine as `mm_processor_kwargs` (`min_pixels`/`max_pixels`,
the reference's 401,408…4,014,080) and `limit_mm_per_prompt` allows the 16 images of a
trajectory. vLLM is imported only when the generator is built, so nothing else needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pixelctl.agent import Generation, Sampling
from pixelctl.backends.hf import visuals


class VLLMGenerator:
    """`generate(convs, samplings) -> [Generation]` over one vLLM engine (one GPU, TP 1)."""

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "bfloat16",
        seed: int = 0,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_images: int = 16,
        max_model_len: int = 32768,
        gpu_memory_utilization: float = 0.9,
    ) -> None:
        from transformers import AutoProcessor
        from vllm import LLM

        from pixelctl.models.resolve import resolve_model

        path = resolve_model(model_path)
        mm_kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
        self.processor = AutoProcessor.from_pretrained(path, **mm_kwargs)
        self.llm = LLM(
            model=path,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            limit_mm_per_prompt={"image": max_images, "video": 1},
            mm_processor_kwargs=mm_kwargs or None,
        )
        self.seed = seed

    def prompt(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        import numpy as np

        text = self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        images, videos = visuals(messages)
        data: dict[str, Any] = {}
        if images:
            data["image"] = images
        if videos:
            data["video"] = [np.stack([np.asarray(f.convert("RGB")) for f in v]) for v in videos]
        return {"prompt": text, "multi_modal_data": data} if data else {"prompt": text}

    def _params(self, sampling: Sampling) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            temperature=sampling.temperature,
            top_p=1.0 if sampling.greedy else sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            seed=None
            if sampling.greedy
            else (self.seed if sampling.seed is None else sampling.seed),
        )

    def __call__(
        self, convs: Sequence[list[dict[str, Any]]], samplings: Sequence[Sampling]
    ) -> list[Generation]:
        prompts = [self.prompt(c) for c in convs]
        outs = self.llm.generate(prompts, [self._params(s) for s in samplings], use_tqdm=False)
        return [
            Generation(
                o.outputs[0].text,
                prompt_tokens=len(o.prompt_token_ids or ()),
                completion_tokens=len(o.outputs[0].token_ids),
            )
            for o in outs
        ]
