"""One rollout's executor state: the inputs, every returned image, and the limit counters.

A `Session` is what a rollout (synth, sft data checks, rl under either engine, eval) holds between
turns. `execute` never raises: whatever the model wrote, the answer is an `Observation` whose text
is one of the docs/method.md §2 strings. `aexecute` runs the image work in a thread pool, because the
OpenRLHF agent runs inside vLLM's asyncio loop and Pillow releases the GIL while it decodes,
crops and resizes.

Index conventions live in `numbering.py` (and docs/executor.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from PIL import Image

from pixelctl.executor import numbering, ops
from pixelctl.executor import observe as ob
from pixelctl.executor.images import (
    ImageLoadError,
    ImageSource,
    image_cache,
    preparation,
    prepare,
)
from pixelctl.executor.observe import Observation, ToolError
from pixelctl.executor.parse import ToolCall, parse_tool_call
from pixelctl.executor.settings import ExecutorSettings

log = logging.getLogger(__name__)

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def thread_pool() -> ThreadPoolExecutor:
    """The shared pool for image work (env PIXELCTL_EXECUTOR_THREADS, default min(4, cores))."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            default = min(4, os.cpu_count() or 1)
            workers = int(os.environ.get("PIXELCTL_EXECUTOR_THREADS", default))
            _POOL = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pixelctl")
        return _POOL


@dataclasses.dataclass
class Counters:
    """Per-rollout counts the rollout uses to enforce limits and the reward uses to score."""

    calls: int = 0  # every tool-call turn, including refused and malformed ones
    operations: int = 0  # calls that were executed (successfully or not)
    failures: int = 0  # calls answered with an Execution error, refusals included
    images: int = 0  # images in the conversation: inputs (a video counts as one) + returned


class Session:
    """Executes the tool calls of one rollout over its input images or video frames."""

    def __init__(
        self,
        images: Iterable[ImageSource] = (),
        video: Sequence[ImageSource] | None = None,
        settings: ExecutorSettings | None = None,
    ) -> None:
        self.settings = settings or ExecutorSettings()
        self._sources = list(images)
        self._video_sources = list(video) if video is not None else None
        if self._sources and self._video_sources is not None:
            raise ValueError("a session takes images or a video, not both (as the reference)")
        if self._video_sources is not None and not self._video_sources:
            raise ValueError("a video needs at least one frame")
        self._inputs: dict[int, Image.Image] = {}
        self._frame_store: dict[int, Image.Image] = {}
        self._returned: list[Image.Image] = []
        self._counters = Counters(images=self._input_count())
        self._lock = threading.Lock()

    # --- state -----------------------------------------------------------------------------------
    @property
    def is_video(self) -> bool:
        return self._video_sources is not None

    @property
    def counters(self) -> Counters:
        return dataclasses.replace(self._counters)

    @property
    def returned(self) -> list[Image.Image]:
        """Every image returned by a tool so far, in order."""
        return list(self._returned)

    @property
    def images(self) -> list[Image.Image]:
        """Inputs as the model sees them (or the video frames), then every returned image."""
        inputs = (
            self.video_frames()
            if self.is_video
            else [self.input_image(i + 1) for i in range(len(self._sources))]
        )
        return inputs + self._returned

    def _input_count(self) -> int:
        return 1 if self.is_video else len(self._sources)

    def _prep_kwargs(self, frame: bool) -> dict[str, Any]:
        s, b = self.settings, self.settings.bounds
        lo, hi = (
            (b.video_min_pixels, b.video_max_pixels)
            if frame
            else (b.image_min_pixels, b.image_max_pixels)
        )
        return {
            "min_pixels": lo,
            "max_pixels": hi,
            "cap": s.max_input_pixels,
            "data_root": s.data_root,
            "fast": s.fast_decode,
        }

    def input_image(self, index: int) -> Image.Image:
        """Input `index` (1-based) decoded and fitted to the image bounds; raises ImageLoadError."""
        if index not in self._inputs:
            self._inputs[index] = prepare(self._sources[index - 1], **self._prep_kwargs(False))
        return self._inputs[index]

    def video_frames(self) -> list[Image.Image]:
        """The video's frames fitted to the video bounds; raises ImageLoadError."""
        for i, source in enumerate(self._video_sources or (), start=1):
            if i not in self._frame_store:
                self._frame_store[i] = prepare(source, **self._prep_kwargs(True))
        return [self._frame_store[i] for i in range(1, len(self._video_sources or ()) + 1)]

    async def _aprepare(self) -> None:
        """Decode missing inputs in the pool; waiting on a decode another rollout started holds
        no thread (the cache hands out futures), so a group's 8 rollouts never idle the pool."""
        frame = self.is_video
        store = self._frame_store if frame else self._inputs
        sources = (self._video_sources or []) if frame else self._sources
        pool, cache, waits = thread_pool(), image_cache(), []
        for i, source in enumerate(sources, start=1):
            if i in store:
                continue
            try:
                key, make = preparation(source, **self._prep_kwargs(frame))
            except ImageLoadError:
                continue  # execute() reports it as an Execution error
            future = pool.submit(make) if key is None else cache.submit(key, make, pool)
            waits.append((i, asyncio.wrap_future(future)))
        for i, waiting in waits:
            try:
                store[i] = await waiting
            except Exception:  # reported by execute(), which tries again
                continue

    # --- limits ----------------------------------------------------------------------------------
    def limit_reason(self, tokens_used: int | None = None) -> str | None:
        """Why the rollout must end instead of executing another call, or None."""
        s, c = self.settings, self._counters
        if c.operations >= s.max_operations:
            return ob.msg_operation_limit(s.max_operations)
        if c.images > s.max_images:
            return ob.msg_image_limit(c.images, 0, s.max_images)
        if tokens_used is not None and tokens_used > s.max_tokens:
            return ob.msg_token_limit(tokens_used, s.max_tokens)
        return None

    # --- execution -------------------------------------------------------------------------------
    def execute(self, call: ToolCall, *, tokens_used: int | None = None) -> Observation:
        """Run one call; every failure is an Execution error observation, never an exception."""
        return self._run_locked(call, None, tokens_used)

    def execute_text(
        self, assistant_turn: str, *, tokens_used: int | None = None
    ) -> Observation | None:
        """Parse and run the turn's call; None when the turn has no call (the rollout ends)."""
        parsed = parse_tool_call(assistant_turn, max_chars=self.settings.max_call_chars)
        if not parsed.ends_with_call:
            return None
        return self._run_locked(parsed.call, parsed.error, tokens_used)

    async def aexecute(self, call: ToolCall, *, tokens_used: int | None = None) -> Observation:
        """`execute` with decoding and image work in the thread pool: an asyncio loop never blocks."""
        await self._aprepare()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            thread_pool(), partial(self.execute, call, tokens_used=tokens_used)
        )

    async def aexecute_text(
        self, assistant_turn: str, *, tokens_used: int | None = None
    ) -> Observation | None:
        """`execute_text` the asynchronous way; None when the turn has no call."""
        parsed = parse_tool_call(assistant_turn, max_chars=self.settings.max_call_chars)
        if not parsed.ends_with_call:
            return None
        await self._aprepare()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            thread_pool(), partial(self._run_locked, parsed.call, parsed.error, tokens_used)
        )

    def _run_locked(
        self, call: ToolCall | None, parse_error: str | None, tokens_used: int | None
    ) -> Observation:
        with self._lock:
            return self._run(call, parse_error, tokens_used)

    def _fail(self, message: str, call: ToolCall | None, *, stop: bool = False) -> Observation:
        self._counters.failures += 1
        return Observation(
            text=ob.error_text(message),
            ok=False,
            error=message,
            name=call.name if call else None,
            arguments=call.arguments if call else None,
            stop=stop,
        )

    def _run(
        self, call: ToolCall | None, parse_error: str | None, tokens_used: int | None
    ) -> Observation:
        c, s = self._counters, self.settings
        c.calls += 1
        reason = self.limit_reason(tokens_used)
        if reason:
            return self._fail(reason, call, stop=True)
        c.operations += 1
        try:
            if parse_error is not None or call is None:
                raise ToolError(parse_error or "no tool call")
            obs = self._dispatch(call)
        except ToolError as exc:
            return self._fail(str(exc), call)
        except ImageLoadError as exc:
            return self._fail(f"An input image could not be used: {exc}", call)
        except Exception as exc:  # a bug here must not kill a rollout of thousands
            log.exception("executor internal error on %r", call)
            return self._fail(f"Internal error in the executor ({type(exc).__name__}: {exc})", call)
        if c.images + len(obs.images) > s.max_images:
            return self._fail(
                ob.msg_image_limit(c.images, len(obs.images), s.max_images), call, stop=True
            )
        self._returned.extend(obs.images)
        c.images += len(obs.images)
        return obs

    def _dispatch(self, call: ToolCall) -> Observation:
        args = call.arguments
        if self.settings.box_mode == "strict":
            name = ops.check_arguments(call.name, args, "strict")
            if name == ob.CROP_TOOL:
                return self._crop(call, self._crop_target(args["target_image"]))
            return self._select(call)
        # compat: the reference's order of checks (`execute_tool`, a3a6c3a): the tool, then
        # image-vs-video for select_frames, then the target before the box; extra keys ignored.
        name = ops.check_name(call.name)
        if name == ob.FRAMES_TOOL:
            if not self.is_video:
                raise ToolError(ob.REF_FRAMES_ON_IMAGE)
            ops.check_present(name, args, ["target_frames"])
            return self._select(call)
        ops.check_present(name, args, ["target_image"])
        image = self._crop_target(args["target_image"])
        ops.check_present(name, args, ["bbox_2d"])
        return self._crop(call, image)

    def _crop(self, call: ToolCall, image: Image.Image) -> Observation:
        out, box = ops.crop(image, call.arguments["bbox_2d"], self.settings)
        return Observation(
            text=ob.crop_text(out.width, out.height),
            images=[out],
            name=call.name,
            arguments=call.arguments,
            crop_box=box,
            target=call.arguments["target_image"],
        )

    def _crop_target(self, target: Any) -> Image.Image:
        mode = self.settings.box_mode
        if self.is_video:
            return numbering.video_target(target, self.video_frames(), self._returned, mode)
        n_inputs = len(self._sources)
        return numbering.image_target(target, n_inputs, self.input_image, self._returned, mode)

    def _select(self, call: ToolCall) -> Observation:
        if not self.is_video:  # strict only: compat refused it before looking at the arguments
            n = len(self._sources) + len(self._returned)
            raise ToolError(ob.msg_frames_on_image(n))
        frames = self.video_frames()
        indices = ops.frame_indices(call.arguments["target_frames"], len(frames), self.settings)
        out = ops.select(frames, indices, self.settings)
        first = numbering.first_frame_number(
            self.settings.box_mode, len(frames), len(self._returned)
        )
        return Observation(
            text=ob.frames_text(out[0].width, out[0].height, first, first + len(out) - 1),
            images=out,
            name=call.name,
            arguments=call.arguments,
        )
