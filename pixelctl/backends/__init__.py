"""Generation backends for the agent (`hf`, `vllm`, `openai`) and the one factory that builds
them from a picklable `BackendSpec`, so a Ray actor builds its own. Heavy imports happen in
`make_generator` only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pixelctl.agent import BatchGenerate


@dataclass(frozen=True)
class BackendSpec:
    """How to build a `generate` function; picklable, so Ray actors build their own."""

    kind: Literal["hf", "vllm", "openai"] = "hf"
    model_path: str = ""
    dtype: str = "float32"
    device: str = "cpu"
    seed: int = 0
    batch_size: int = 8
    base_url: str = "http://127.0.0.1:8000/v1"
    model_name: str = "pixel-reasoner"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    processor_min_pixels: int | None = None
    processor_max_pixels: int | None = None
    max_images: int = 16


def make_generator(spec: BackendSpec) -> BatchGenerate:
    """The backend's `generate(convs, samplings)`; heavy imports happen here only."""
    if spec.kind == "hf":
        from pixelctl.backends.hf import HFGenerator

        return HFGenerator(
            spec.model_path,
            device=spec.device,
            dtype=spec.dtype,
            seed=spec.seed,
            batch_size=spec.batch_size,
        )
    if spec.kind == "vllm":
        from pixelctl.backends.vllm_backend import VLLMGenerator

        return VLLMGenerator(
            spec.model_path,
            dtype=spec.dtype,
            seed=spec.seed,
            min_pixels=spec.processor_min_pixels,
            max_pixels=spec.processor_max_pixels,
            max_images=spec.max_images,
        )
    if spec.kind == "openai":
        from pixelctl.backends.openai_backend import OpenAIGenerator

        return OpenAIGenerator.from_env(
            spec.base_url, spec.model_name, spec.api_key_env, concurrency=spec.concurrency
        )
    raise ValueError(f"unknown backend {spec.kind!r}; choose hf, vllm or openai")
