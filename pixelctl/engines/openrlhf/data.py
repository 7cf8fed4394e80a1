"""RL prompts → OpenRLHF's prompt dataset, every record validated, every reject reported.

Input: our RL data and the authors' parquet layout (`qid`, `question`, `image` list, `answer`,
`is_video`), read by `pixelctl.queries.load_queries` (missing files, empty answers, duplicate
qids, bad JSON are rejected there with file and line). On top, OpenRLHF needs what it cannot
check itself: an image prompt holds at most `executor.max_images` images and a video at most
`VIDEO_FRAMES` frames, because vLLM refuses a request with more images than
`--data.max_images_per_prompt`.

Output: one JSON line per prompt, `{"prompt", "label", "images", "qid"}`.
- `prompt` is the chat-formatted text we render ourselves (system tool block, one
  `<|vision_start|><|image_pad|><|vision_end|>` per image, question + guideline, the assistant
  header), so `--data.apply_chat_template` stays off and the prompt is exactly the SFT format.
- `images` holds absolute paths (OpenRLHF's processor expands each pad to the image's tokens).
- `label` is a JSON string carrying what the agent needs on the worker, because OpenRLHF hands
  the agent instance the label but not the dataset images: the answer, the image paths,
  `is_video`, the question and the qid.
Videos go in as their frames, one image each: OpenRLHF 0.11.2 multi-turn is images only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pixelctl.agent import Query
from pixelctl.executor import visual_tokens
from pixelctl.prompt import build_messages
from pixelctl.queries import load_queries
from pixelctl.rejects import Reject

VIDEO_FRAMES = 16  # frames pre-extracted per video (docs/method.md §2); vLLM sees each as one image


def max_images_per_prompt(max_images: int) -> int:
    """vLLM's per-request image cap: the executor counts a video as one image, vLLM as 16."""
    return max_images + VIDEO_FRAMES - 1


@cache
def _template() -> Any:
    import jinja2

    from pixelctl.models.qwen import chat_template

    env = jinja2.Environment(keep_trailing_newline=True)
    return env.from_string(chat_template())


def render_prompt(query: Query, mode: str = "vcot") -> str:
    """The first model input in Qwen2.5-VL chat format, ending with the assistant header."""
    messages = build_messages(query.question, images=list(query.images), mode=mode)  # type: ignore[arg-type]
    return _template().render(messages=messages, add_generation_prompt=True)


def label_json(query: Query) -> str:
    """What the agent instance needs on the worker, as OpenRLHF's opaque `label` string."""
    answer = query.answer if isinstance(query.answer, str) else [str(a) for a in query.answer]
    return json.dumps(
        {
            "qid": query.qid,
            "question": query.question,
            "answer": answer,
            "images": list(query.images),
            "is_video": query.is_video,
        },
        ensure_ascii=False,
    )


def parse_label(label: str | dict) -> Query:
    """The `Query` a label was made from; a clear error for anything else (a wrong dataset)."""
    try:
        data = json.loads(label) if isinstance(label, str) else dict(label)
        return Query(
            qid=str(data["qid"]),
            question=str(data.get("question", "")),
            images=tuple(data["images"]),
            is_video=bool(data["is_video"]),
            answer=data["answer"],
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(
            f"label is not a pixelctl label ({exc}): {str(label)[:120]!r}; convert the data "
            "with pixelctl (`pixelctl rl RECIPE` does it) instead of passing raw records"
        ) from None


@dataclass(frozen=True)
class PromptBudget:
    """What a first prompt may cost: `rl.rollout.max_prompt_tokens`, counted the way the model
    will see it — the rendered text (one pad per image) plus each image's visual tokens after
    the executor fits it to the train bounds (`smart_resize`, as `Session.input_image` does).

    `count_text` tokenizes (the start checkpoint's tokenizer); without it only the visual tokens
    are counted, a lower bound."""

    max_tokens: int
    image_min_pixels: int
    image_max_pixels: int
    video_min_pixels: int
    video_max_pixels: int
    count_text: Any = None  # Callable[[str], int] | None

    @classmethod
    def from_recipe(cls, recipe: Any, count_text: Any = None) -> PromptBudget:
        b = recipe.executor.bounds.train
        return cls(
            recipe.rl.rollout.max_prompt_tokens,
            b.image_min_pixels,
            b.image_max_pixels,
            b.video_min_pixels,
            b.video_max_pixels,
            count_text,
        )

    def visual_tokens(self, width: int, height: int, video: bool) -> int:
        lo, hi = (
            (self.video_min_pixels, self.video_max_pixels)
            if video
            else (self.image_min_pixels, self.image_max_pixels)
        )
        return visual_tokens(height, width, lo, hi)

    def prompt_tokens(self, query: Query, prompt: str) -> int:
        """Raises OSError (unreadable image) or ValueError (extreme aspect ratio)."""
        from PIL import Image

        n = self.count_text(prompt) - len(query.images) if self.count_text else 0
        for path in query.images:
            with Image.open(path) as im:  # reads the header only
                width, height = im.size
            n += self.visual_tokens(width, height, query.is_video)
        return n


def _limit_reason(query: Query, max_images: int) -> str | None:
    n = len(query.images)
    if query.is_video and not 0 < n <= VIDEO_FRAMES:
        return f"a video needs 1..{VIDEO_FRAMES} frames, got {n}"
    if not query.is_video and n > max_images:
        return f"{n} images exceed executor.max_images = {max_images}"
    return None


@dataclass
class ConversionReport:
    """What `convert` wrote and what it refused, with the reason for each refusal."""

    output: str
    written: int = 0
    images: int = 0
    videos: int = 0
    text_only: int = 0
    rejects: list[Reject] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.written} prompts ({self.images} image, {self.videos} video, "
            f"{self.text_only} text-only), {len(self.rejects)} rejected"
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["rejects"] = [
            {"file": r.file, "line": r.line, "qid": r.id, "reason": r.reason, "text": str(r)}
            for r in self.rejects
        ]
        return out


def convert(
    sources: Sequence[str | Path],
    output: str | Path,
    *,
    mode: str = "vcot",
    max_images: int = 16,
    budget: PromptBudget | None = None,
    trim: Any = None,
) -> ConversionReport:
    """Convert every record of `sources` into `output` (JSONL) and write `<output>.report.json`.

    `budget` refuses first prompts over `rl.rollout.max_prompt_tokens` (and unreadable images)
    here, listed, instead of failing on a worker; `trim(n)` says how many of the `n` accepted
    prompts to drop from the end so every round divides over the actor ranks
    (`flags.trim_for_ranks`)."""
    loaded = load_queries(list(sources))
    out = Path(output)
    report = ConversionReport(str(out.resolve()), rejects=list(loaded.rejects))
    out.parent.mkdir(parents=True, exist_ok=True)
    records = []
    for q in loaded.queries:
        reason = _limit_reason(q, max_images)
        q = _absolute(q)
        prompt = render_prompt(q, mode) if reason is None else ""
        if reason is None and budget is not None:
            reason = _budget_reason(q, prompt, budget)
        if reason:
            report.rejects.append(Reject("(converted)", 0, q.qid, reason))
            continue
        records.append((q, prompt))
    drop = trim(len(records)) if trim is not None and records else 0
    for q, _ in records[len(records) - drop :]:
        report.rejects.append(
            Reject(
                "(converted)", 0, q.qid, "trimmed: the last round must divide over the actor ranks"
            )
        )
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for q, prompt in records[: len(records) - drop]:
            record = {
                "prompt": prompt,
                "label": label_json(q),
                "images": list(q.images),
                "qid": q.qid,
            }
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            report.written += 1
            kind = "videos" if q.is_video else ("images" if q.images else "text_only")
            setattr(report, kind, getattr(report, kind) + 1)
    tmp.replace(out)  # a killed conversion never leaves a half file under the real name
    report_path = out.with_name(out.name + ".report.json")
    report_path.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    return report


def _budget_reason(query: Query, prompt: str, budget: PromptBudget) -> str | None:
    try:
        n = budget.prompt_tokens(query, prompt)
    except (OSError, ValueError) as exc:
        return f"unreadable image: {exc}"
    if n > budget.max_tokens:
        return (
            f"the first prompt takes {n} tokens (text + visual tokens at the train bounds), over "
            f"rl.rollout.max_prompt_tokens = {budget.max_tokens}"
        )
    return None


def _absolute(query: Query) -> Query:
    """Workers run in the job's working dir: every image path must be absolute."""
    from dataclasses import replace

    return replace(query, images=tuple(os.path.abspath(p) for p in query.images))
