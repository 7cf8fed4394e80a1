"""Build one trajectory: re-execute its operations through the real executor, write, compose.

Shapes (docs/method.md §7; messages in Qwen format, docs/method.md §6):
- single_pass: user(input, question) → assistant(whole-input analysis + call on the cue) →
  user(observation) → assistant(analysis of the detail + \\boxed{answer});
- self_correction: the same with a missed call first: assistant(analysis + missed call) →
  user(its observation) → assistant(reflection + correct call) → ...; the missed turn's index is
  listed in `error_turns` so SFT can mask it;
- text_only: user(input, question) → assistant(reasoning + \\boxed{answer}).
Every operation runs through `pixelctl.executor.Session` and its real observation (text and
images) is stored, so SFT sees exactly what a rollout would. Image paths in records are relative
to the output folder, with forward slashes.
"""

from __future__ import annotations

import asyncio
import filecmp
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelctl.executor import ExecutorSettings, Observation, Session, ToolCall
from pixelctl.models.qwen import IM_END, IM_START, TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from pixelctl.prompt import assistant_message, build_messages, format_tool_call, observation_message
from pixelctl.synth.operations import Op, correct_op, frames_words, where_words, wrong_op
from pixelctl.synth.plan import Assignment
from pixelctl.synth.seeds import Seed, SynthReject
from pixelctl.synth.writers.base import Job, Writer, WriterError

WRITER_FRAMES = 4  # frames an LLM writer sees of a video


class ReexecuteError(RuntimeError):
    """The executor refused an operation the synthesizer planned (a seed it cannot use)."""


@dataclass
class Step:
    op: Op
    obs: Observation
    images: list[str]  # relative paths of the saved observation images


@dataclass
class Reexecuted:
    inputs: list[str]  # relative paths of the input image or the video frames
    steps: list[Step]


# ----------------------------------------------------------------------------- files
def seed_folder(seed_id: str) -> str:
    """A file-system-safe folder name, unique per id (a hash is added when characters change)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", seed_id).strip("._") or "seed"
    if safe != seed_id:
        safe += "-" + hashlib.sha1(seed_id.encode()).hexdigest()[:8]
    return safe


def _place(src: Path, dst: Path) -> None:
    """Copy an input into the dataset, atomically; keep an identical one. A copy, never a hard
    link: editing a training image must not edit its source scene (or the other way round)."""
    if dst.is_file() and not dst.samefile(src) and filecmp.cmp(src, dst, shallow=False):
        return
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    shutil.copyfile(src, tmp)
    tmp.replace(dst)


def _save_png(image: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    image.save(tmp, format="PNG", compress_level=3)
    tmp.replace(path)


# ----------------------------------------------------------------------------- re-execute
def plan_ops(a: Assignment, pad: float) -> tuple[str, list[Op]]:
    """(the kind actually built, its operations); a seed with no real miss becomes single-pass."""
    if a.kind == "text_only":
        return "text_only", []
    right = correct_op(a.seed)
    if a.kind == "self_correction":
        wrong = wrong_op(a.seed, a.miss, pad)
        if wrong is not None:
            return "self_correction", [wrong, right]
    return "single_pass", [right]


def reexecute(seed: Seed, ops: list[Op], settings: ExecutorSettings, out: Path) -> Reexecuted:
    """Place the inputs under images/, run every op through a Session, save what it returns."""
    rel_dir = f"images/{seed_folder(seed.id)}"
    folder = out / rel_dir
    folder.mkdir(parents=True, exist_ok=True)
    sources = list(seed.frames) if seed.is_video else [seed.image]
    names = (
        [f"frame-{i:03d}{p.suffix.lower()}" for i, p in enumerate(sources)]
        if seed.is_video
        else [f"input{Path(str(seed.image)).suffix.lower()}"]
    )
    for src, name in zip(sources, names, strict=True):
        _place(Path(str(src)), folder / name)
    placed = [folder / n for n in names]
    session = (
        Session(video=placed, settings=settings)
        if seed.is_video
        else Session(images=placed, settings=settings)
    )
    steps = []
    for k, op in enumerate(ops, start=1):
        obs = session.execute(
            ToolCall(op.name, op.arguments, format_tool_call(op.name, op.arguments))
        )
        if not obs.ok:
            raise ReexecuteError(f"executor refused {op.name} {op.arguments}: {obs.error}")
        rel = [f"{rel_dir}/op{k}-{j}.png" for j in range(len(obs.images))]
        for img, r in zip(obs.images, rel, strict=True):
            _save_png(img, out / r)
        steps.append(Step(op, obs, rel))
    return Reexecuted([f"{rel_dir}/{n}" for n in names], steps)


# ----------------------------------------------------------------------------- writing
def _target(seed: Seed) -> str:
    if seed.is_video:
        return "the moment the question is about"
    labels = list(dict.fromkeys(r.label for r in seed.regions if r.label))
    if labels:
        return " and ".join(f"the {label}" for label in labels)
    return "the text region" if seed.source == "web" else "the object in question"


def _detail(seed: Seed) -> str:
    texts = [r.text for r in seed.regions if r.text]
    if seed.source == "web":
        return "; ".join(f'the text "{t}"' for t in texts)
    return "; ".join(texts)


def make_jobs(a: Assignment, kind: str, rep: Reexecuted, out: Path) -> dict[str, Job]:
    seed = a.seed
    right = rep.steps[-1].op if rep.steps else correct_op(seed) if seed.has_cue else None
    where = ""
    if right is not None:
        where = (
            frames_words(right.arguments["target_frames"])
            if seed.is_video
            else where_words(right.arguments["bbox_2d"])
        )
    inputs = [out / p for p in rep.inputs]
    if seed.is_video and len(inputs) > WRITER_FRAMES:
        step = len(inputs) / WRITER_FRAMES
        inputs = [inputs[int(i * step)] for i in range(WRITER_FRAMES)]
    base = {
        "seed_id": seed.id,
        "source": seed.source,
        "question": seed.question,
        "answer": seed.answer,
        "target": _target(seed),
        "where": where,
        "detail": _detail(seed),
        "caption": seed.caption,
    }
    if kind == "text_only":
        return {"text_only": Job("text_only", images=tuple(inputs), **base)}
    jobs = {
        "describe": Job("describe", images=tuple(inputs), **base),
        "detail": Job("detail", images=tuple(out / p for p in rep.steps[-1].images), **base),
    }
    if kind == "self_correction":
        wrong = rep.steps[0]
        jobs["reflect"] = Job(
            "reflect", miss=wrong.op.miss, images=tuple(out / p for p in wrong.images), **base
        )
    return jobs


_OPEN, _CLOSE = re.escape(TOOL_CALL_OPEN), re.escape(TOOL_CALL_CLOSE)
_TOOL_RE = re.compile(f"{_OPEN}.*?({_CLOSE}|$)", re.DOTALL)
_MARKERS_RE = re.compile(
    "|".join(map(re.escape, (IM_START, IM_END, TOOL_CALL_OPEN, TOOL_CALL_CLOSE)))
)
_BOXED_RE = re.compile(r"\\boxed\{([^{}]*)\}")


def clean(text: str) -> str:
    """Writer text made safe to embed: no tool calls, chat markers or competing \\boxed{}."""
    text = _TOOL_RE.sub("", text)
    text = _MARKERS_RE.sub("", text)
    return _BOXED_RE.sub(r"\1", text).strip()


def compose(
    a: Assignment, kind: str, rep: Reexecuted, texts: dict[str, str], mode: str
) -> dict[str, Any]:
    seed = a.seed
    visual = {"video": rep.inputs} if seed.is_video else {"images": rep.inputs}
    msgs = build_messages(seed.question, mode=mode, **visual)  # type: ignore[arg-type]
    final = (
        f"{clean(texts.get('detail') or texts.get('text_only', ''))}\n\n\\boxed{{{seed.answer}}}"
    )
    error_turns: list[int] = []
    lead = clean(texts.get("describe", ""))
    for step in rep.steps:
        call = format_tool_call(step.op.name, step.op.arguments)
        if step.op.error:
            error_turns.append(len(msgs))
        msgs.append(assistant_message(f"{lead}\n\n{call}"))
        msgs.append(observation_message(step.obs, step.images))
        lead = clean(texts.get("reflect", ""))
    msgs.append(assistant_message(final))
    answer: Any = seed.answer if len(seed.answers) == 1 else list(seed.answers)
    record = {
        "id": seed.id,
        "kind": kind,
        "source": seed.source,
        "message_list": msgs,
        "error_turns": error_turns,
        "answer": answer,
        "question": seed.question,
        "image": rep.inputs,
        "is_video": seed.is_video,
        "operations": len(rep.steps),
    }
    if seed.options:
        record["options"] = list(seed.options)
    return record


async def build_record(
    a: Assignment, writer: Writer, settings: ExecutorSettings, out: Path, mode: str
) -> dict[str, Any] | SynthReject:
    """The SFT record for one assignment, or a SynthReject saying why it could not be built."""
    seed = a.seed
    kind, ops = plan_ops(a, settings.pad)
    try:
        rep = await asyncio.to_thread(reexecute, seed, ops, settings, out)
    except ReexecuteError as exc:
        if kind != "self_correction":
            return SynthReject(seed.id, seed.file, seed.line, str(exc), stage="reexecute")
        kind, ops = "single_pass", ops[1:]  # our inserted miss was refused: build it plainly
        try:
            rep = await asyncio.to_thread(reexecute, seed, ops, settings, out)
        except ReexecuteError as exc2:
            return SynthReject(seed.id, seed.file, seed.line, str(exc2), stage="reexecute")
    jobs = make_jobs(a, kind, rep, out)
    texts = await asyncio.gather(*(writer.write(j) for j in jobs.values()), return_exceptions=True)
    for t in texts:
        if isinstance(t, WriterError):
            return SynthReject(seed.id, seed.file, seed.line, f"writer: {t}", stage="write")
        if isinstance(t, BaseException):
            raise t
    return compose(a, kind, rep, dict(zip(jobs, texts, strict=True)), mode)
