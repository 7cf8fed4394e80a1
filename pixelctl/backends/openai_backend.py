"""Generation through any OpenAI-compatible chat server (e.g. one started with `vllm serve`).

The agent's Qwen-format conversation is sent as chat messages: text items as text parts,
images as base64 PNG data URLs (lossless, so the server sees the executor's pixels), a video
as one `video_url` part holding its frames as comma-separated base64 JPEGs (`data:video/jpeg`,
the frame-list form vLLM's server accepts). Multi-turn: the whole conversation goes with
every request. Requests run concurrently (bounded by `concurrency`); the `openai` client
retries 429/5xx and timeouts. Greedy turns send `temperature 0`; token counts come from the
server's `usage`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import weakref
from collections.abc import Sequence
from typing import Any

from pixelctl.agent import Generation, Sampling


def _encode(image: Any, fmt: str) -> str:
    buf = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buf, format="JPEG", quality=95)
    else:
        image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class _Encoder:
    """Base64 of each image once per conversation life (turns resend the same images)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str], tuple[weakref.ref, str]] = {}

    def __call__(self, image: Any, fmt: str = "PNG") -> str:
        key = (id(image), fmt)
        hit = self._cache.get(key)
        if hit is not None and hit[0]() is image:
            return hit[1]
        data = _encode(image, fmt)
        self._cache[key] = (weakref.ref(image), data)
        return data

    def prune(self) -> None:
        self._cache = {k: v for k, v in self._cache.items() if v[0]() is not None}


def to_openai_messages(
    messages: list[dict[str, Any]], encode: _Encoder | None = None
) -> list[dict[str, Any]]:
    """Qwen-format messages with PIL images → OpenAI chat messages with data URLs."""
    encode = encode or _Encoder()
    out = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        for item in message["content"]:
            kind = item.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": item["text"]})
            elif kind == "image":
                url = f"data:image/png;base64,{encode(item['image'])}"
                parts.append({"type": "image_url", "image_url": {"url": url}})
            elif kind == "video":
                frames = ",".join(encode(f, "JPEG") for f in item["video"])
                parts.append(
                    {"type": "video_url", "video_url": {"url": f"data:video/jpeg;base64,{frames}"}}
                )
            else:
                raise ValueError(f"unsupported content item type {kind!r}")
        if message["role"] == "assistant" or (
            len(parts) == 1 and parts[0]["type"] == "text" and message["role"] == "system"
        ):
            out.append({"role": message["role"], "content": "".join(p["text"] for p in parts)})
        else:
            out.append({"role": message["role"], "content": parts})
    return out


class OpenAIGenerator:
    """`generate(convs, samplings) -> [Generation]` over an OpenAI-compatible endpoint."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 600.0,
        max_retries: int = 5,
        seed: int | None = 0,
    ) -> None:
        self.base_url, self.model, self.api_key = base_url, model, api_key or "EMPTY"
        self.concurrency, self.timeout_s, self.max_retries = concurrency, timeout_s, max_retries
        self.seed = seed
        self.encode = _Encoder()

    @classmethod
    def from_env(cls, base_url: str, model: str, api_key_env: str, **kw: Any) -> OpenAIGenerator:
        """Read the key from `api_key_env` (unset is fine for a local server)."""
        return cls(base_url, model, api_key=os.environ.get(api_key_env), **kw)

    def request(self, messages: list[dict[str, Any]], sampling: Sampling) -> dict[str, Any]:
        """The chat-completions body of one turn."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(messages, self.encode),
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": 1.0 if sampling.greedy else sampling.top_p,
        }
        seed = self.seed if sampling.seed is None or sampling.greedy else sampling.seed
        if seed is not None:
            body["seed"] = seed
        return body

    async def _one(self, client: Any, sem: asyncio.Semaphore, body: dict[str, Any]) -> Generation:
        async with sem:
            resp = await client.chat.completions.create(**body)
        text = resp.choices[0].message.content or ""
        usage = resp.usage
        return Generation(
            text,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        )

    async def agenerate(
        self, convs: Sequence[list[dict[str, Any]]], samplings: Sequence[Sampling]
    ) -> list[Generation]:
        from openai import AsyncOpenAI

        bodies = [self.request(c, s) for c, s in zip(convs, samplings, strict=True)]
        self.encode.prune()
        sem = asyncio.Semaphore(self.concurrency)
        async with AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            timeout=self.timeout_s,
            max_retries=self.max_retries,
        ) as client:
            return list(await asyncio.gather(*(self._one(client, sem, b) for b in bodies)))

    def __call__(
        self, convs: Sequence[list[dict[str, Any]]], samplings: Sequence[Sampling]
    ) -> list[Generation]:
        return asyncio.run(self.agenerate(convs, samplings))
