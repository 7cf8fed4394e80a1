"""Batched generation with transformers, as the rollout agent's `generate` function.

Conversations arrive in Qwen message format with PIL images already fitted to the executor's
bounds, so by default the processor does not resize them again: the model sees exactly the
pixels the executor crops from (eval's processor clamp, the reference's 401,408…4,014,080 px,
wraps this function: `evaluation.chunks.ProcessorClamp`).
Batches are left-padded and grouped by sampling settings (the reference lowers the
temperature after a tool call, so one batch can hold two temperatures).

Two ways to continue a conversation:
- text (default; eval): every turn re-renders the whole conversation through the chat template
  and tokenizes it again, as a server would;
- token-in/out (`token_io=True`; the RL engine): `run_batch` passes each rollout's `TokenTrace`
  and the turn is generated from exactly the ids the model saw and sampled before, plus the new
  fragment (the first prompt, or `<|im_end|>` if the model did not write it, the observation
  and the next assistant header, rendered by the template and tokenized alone). The sampled ids
  come back as drawn — a turn cut by `max_new_tokens` has no end token — with their
  log-probabilities under the model at temperature 1, so training sees what was sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pixelctl.agent import Generation, Sampling, TokenTrace
from pixelctl.models.qwen import IMAGE_PAD, VIDEO_PAD, VISION_TOKENS


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
        token_io: bool = False,
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
        self.token_io = token_io

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
        return self._encode(texts, images, videos, padding=True)

    def _encode(self, texts: list[str], images: list, videos: list, **extra: Any) -> Any:
        """The processor on texts and their visuals, with this backend's pixel bounds."""
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", **extra}
        if images:
            kwargs["images"] = images
            kwargs["images_kwargs"] = self.image_kwargs
        if videos:
            kwargs["videos"] = videos
            kwargs["videos_kwargs"] = {**self.image_kwargs, "do_sample_frames": False}
        return self.processor(**kwargs)

    def fragment(self, conv: list[dict[str, Any]], trace: TokenTrace | None) -> tuple[list, Any]:
        """The ids (and processed visuals) to feed before the next turn of a traced rollout:
        the whole first prompt, or everything the template renders after the last assistant
        turn's content, with `<|im_end|>` first unless the model sampled it."""
        tok = self.processor.tokenizer
        if trace is None or not trace.ids:
            text = self.processor.apply_chat_template(
                conv, tokenize=False, add_generation_prompt=True
            )
            part = conv
        else:
            last = max(i for i, m in enumerate(conv) if m["role"] == "assistant")
            base = self.processor.apply_chat_template(conv[: last + 1], tokenize=False)
            full = self.processor.apply_chat_template(
                conv, tokenize=False, add_generation_prompt=True
            )
            end = tok.eos_token + "\n"
            if not full.startswith(base) or not base.endswith(end):
                raise ValueError(
                    "the chat template does not render a conversation as a prefix of its "
                    "continuation; token-in/out generation needs Qwen's template"
                )
            closed = trace.ids[-1] == tok.eos_token_id
            text = ("\n" if closed else end) + full[len(base) :]
            part = conv[last + 1 :]
        enc = self._encode([text], *visuals(part))
        drop = ("input_ids", "attention_mask", "mm_token_type_ids")  # rebuilt per sequence
        vis = {k: v for k, v in enc.items() if k not in drop}
        return enc["input_ids"][0].tolist(), (vis or None)

    def __call__(
        self,
        convs: Sequence[list[dict[str, Any]]],
        samplings: Sequence[Sampling],
        traces: Sequence[TokenTrace | None] | None = None,
    ) -> list[Generation]:
        if traces is not None and len(traces) != len(convs):
            raise ValueError(f"{len(traces)} traces for {len(convs)} conversations")
        out: list[Generation | None] = [None] * len(convs)
        groups: dict[Sampling, list[int]] = {}
        for i, s in enumerate(samplings):
            groups.setdefault(s, []).append(i)
        for sampling, idx in groups.items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                if traces is None:
                    gens = self._generate([convs[i] for i in chunk], sampling)
                else:
                    gens = self._generate_traced(
                        [convs[i] for i in chunk], [traces[i] for i in chunk], sampling
                    )
                for i, gen in zip(chunk, gens, strict=True):
                    out[i] = gen
        return out  # type: ignore[return-value]

    def vision_ids(self) -> list[int]:
        tok = self.processor.tokenizer
        return [int(i) for i in tok.convert_tokens_to_ids(list(VISION_TOKENS))]

    def pad_left(self, rows: Sequence[Sequence[int]]) -> dict[str, Any]:
        tok = self.processor.tokenizer
        image, video = tok.convert_tokens_to_ids([IMAGE_PAD, VIDEO_PAD])
        return pad_left(rows, tok.pad_token_id, image, video)

    def _sample(self, batch: dict[str, Any], sampling: Sampling, *, logits: bool = False) -> Any:
        import torch

        tok = self.processor.tokenizer
        kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "do_sample": False}
        if not sampling.greedy:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            # sampling draws from torch's global RNG; seed it from our generator so a run is
            # reproducible from the recipe seed whatever ran before
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator)))
        if logits:
            kwargs.update(return_dict_in_generate=True, output_logits=True)
            # a sampled vision placeholder would be read as an image slot on the next forward
            # (text decoding drops it silently); the policy never writes one
            kwargs["suppress_tokens"] = self.vision_ids()
        with torch.no_grad():
            return self.model.generate(
                **batch, **kwargs, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
            )

    def _generate_traced(
        self,
        convs: list[list[dict[str, Any]]],
        traces: list[TokenTrace | None],
        sampling: Sampling,
    ) -> list[Generation]:
        import torch

        tok = self.processor.tokenizer
        frags = [self.fragment(c, t) for c, t in zip(convs, traces, strict=True)]
        rows, vis = [], []
        for trace, (ids, v) in zip(traces, frags, strict=True):
            rows.append((trace.ids if trace else []) + ids)
            vis += [*(trace.visuals if trace else []), *([v] if v is not None else [])]
        batch = {**self.pad_left(rows), **concat_visuals(vis)}
        batch = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in batch.items()}
        res = self._sample(batch, sampling, logits=True)
        width = batch["input_ids"].shape[1]
        new = res.sequences[:, width:]
        logp = (
            torch.log_softmax(torch.stack(res.logits, dim=1).float(), dim=-1)
            if res.logits
            else None
        )
        gens = []
        for b, ((fed, fed_vis), row) in enumerate(zip(frags, new.tolist(), strict=True)):
            n = row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
            ids = row[:n]  # after the end token HF writes padding, which was never sampled
            lps = tuple(float(logp[b, t, i]) for t, i in enumerate(ids)) if logp is not None else ()
            text = tok.decode(ids, skip_special_tokens=True)
            gens.append(
                Generation(text, len(rows[b]), len(ids), tuple(fed), fed_vis, tuple(ids), lps)
            )
        return gens

    def _generate(self, convs: list[list[dict[str, Any]]], sampling: Sampling) -> list[Generation]:
        batch = self.encode(convs).to(self.device)
        tok = self.processor.tokenizer
        ids = self._sample(batch, sampling)
        prompt_len = batch["input_ids"].shape[1]
        prompt_tokens = batch["attention_mask"].sum(dim=1).tolist()
        gens = []
        for row, n_prompt in zip(ids[:, prompt_len:], prompt_tokens, strict=True):
            keep = row[row != tok.pad_token_id]
            n_new = int((keep != tok.eos_token_id).sum()) + int((keep == tok.eos_token_id).any())
            text = tok.decode(keep, skip_special_tokens=True)
            gens.append(Generation(text, int(n_prompt), n_new))
        return gens


def pad_left(
    rows: Sequence[Sequence[int]], pad_id: int, image_id: int, video_id: int
) -> dict[str, Any]:
    """Token rows → left-padded `input_ids`, `attention_mask` and the `mm_token_type_ids` (text 0,
    image 1, video 2) from which Qwen2.5-VL computes its 3-D positions, as the processor would."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r) :] = 1
    types = (ids == image_id).int() + 2 * (ids == video_id).int()
    return {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": types * mask}


def concat_visuals(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Processed visual inputs of several fragments, in order, as one processor output."""
    import torch

    out: dict[str, list] = {}
    for part in parts:
        for key, value in part.items():
            out.setdefault(key, []).append(value)
    return {
        k: torch.cat(v) if hasattr(v[0], "shape") else [x for xs in v for x in xs]
        for k, v in out.items()
    }
