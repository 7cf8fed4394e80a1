"""The multi-turn rollout: prompt → generate → parse/execute → observe → … → outcome.

One implementation for every engine. A `Rollout` is a small state machine over one query: the
engine asks it for the conversation and the sampling of the next turn, generates however it
likes (transformers, vLLM inside OpenRLHF, an OpenAI-compatible server), and hands the text
back with `observe`. The rollout ends on a turn without a tool call (the answer), a limit
(docs/method.md §2: 4 executed operations — a 5th call ends it unexecuted but still counts —, 16 images,
the token budget), or a turn cap that stops a model that only writes malformed calls.

`run_batch` drives many rollouts with one batched `generate` call per turn, which is what the
local engine and the `hf` eval backend use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

from pixelctl.executor import ExecutorSettings, Observation, Session, parse_tool_call
from pixelctl.models.qwen import IM_END
from pixelctl.prompt import assistant_message, build_messages, observation_message

StopReason = Literal["answer", "limit", "turn_limit", "notool"]


@dataclass(frozen=True)
class Query:
    """One prompt: the authors' layout (`qid`, `question`, `image` list, `answer`, `is_video`)."""

    qid: str
    question: str
    images: tuple[str, ...] = ()  # image paths, or the video's frame paths when is_video
    is_video: bool = False
    answer: Any = None  # a string or a list of acceptable strings
    benchmark: str = ""
    options: tuple[str, ...] | None = None
    category: str | None = None


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 2048
    # one sample's own seed (vllm, openai): k samples of one prompt must not share the backend's
    # seed, or a seeded server returns k copies. Not part of equality: batches group by the rest
    seed: int | None = field(default=None, compare=False)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class SamplingPlan:
    """First-turn sampling, and the temperature the reference lowers to after a tool call."""

    first: Sampling = Sampling()
    after_tool_temperature: float | None = None

    @classmethod
    def greedy(cls, max_new_tokens: int = 2048) -> SamplingPlan:
        return cls(Sampling(0.0, 1.0, max_new_tokens))

    def for_turn(self, after_tool: bool) -> Sampling:
        if after_tool and self.after_tool_temperature is not None and not self.first.greedy:
            return dataclasses.replace(self.first, temperature=self.after_tool_temperature)
        return self.first


@dataclass
class CallRecord:
    """One tool-call attempt: what the model asked, whether it ran, what went wrong."""

    turn: int
    name: str | None
    arguments: dict[str, Any] | None
    executed: bool
    ok: bool
    error: str | None
    n_images: int
    crop_box: tuple[int, int, int, int] | None = None
    target: int | None = None
    # executed, but its images would pass `max_images`: nothing returned, the rollout stopped
    dropped: bool = False


def final_error_of(calls: Sequence[Any]) -> bool:
    """The reference's unfixed-failure flag over a finished rollout's calls (docs/method.md §4).

    The reference (experience_maker.py at a3a6c3a) remembers whether the last *executed*
    operation failed and sets the flag as `finish_flag and temp_error_flags` when the rollout
    finishes, however it finishes: an answer, a 5th call refused unexecuted, the token budget,
    the image count. Calls refused by a limit do not execute, so they do not reset the memory; a
    call whose result was dropped for the image cap did execute successfully, so it clears it.
    `calls` are `CallRecord`s or their dicts (eval's `samples.jsonl`).
    """

    def get(call: Any, key: str, default: Any = False) -> Any:
        return call.get(key, default) if isinstance(call, dict) else getattr(call, key, default)

    executed = [c for c in calls if get(c, "executed", True)]
    if not executed:
        return False
    last = executed[-1]
    return not get(last, "ok") and not get(last, "dropped")


@dataclass
class Outcome:
    """Everything a rollout produced; feeds the reward, the sample logs and eval's records."""

    query: Query
    messages: list[dict[str, Any]]
    calls: list[CallRecord]
    turns: list[str]  # assistant texts, in order
    stop_reason: StopReason
    prompt_tokens: int = 0  # of the last turn's prompt (the whole conversation so far)
    completion_tokens: int = 0  # summed over turns
    correct: float | None = None  # set by grading: 1, 0, or -1 (unparsable, training)
    scores: dict[str, float] = field(default_factory=dict)
    trace: TokenTrace | None = None  # the exact token sequence, from token-in/out backends

    @property
    def n_calls(self) -> int:
        return len(self.calls)

    @property
    def n_operations(self) -> int:
        return sum(c.executed for c in self.calls)

    @property
    def is_video(self) -> bool:
        return self.query.is_video

    @property
    def final_error(self) -> bool:
        """The last executed operation failed and was never fixed (see `final_error_of`)."""
        return final_error_of(self.calls)

    @property
    def response(self) -> str:
        """All assistant turns, as the reference matcher reads them."""
        return "\n".join(self.turns)

    @property
    def final_text(self) -> str:
        return self.turns[-1] if self.turns else ""

    @property
    def returned_images(self) -> list[Image.Image]:
        return [
            item["image"]
            for m in self.messages[2:]
            if m["role"] == "user"
            for item in m["content"]
            if item["type"] == "image"
        ]


class Rollout:
    """One query's conversation, advanced one assistant turn at a time."""

    def __init__(
        self,
        query: Query,
        *,
        settings: ExecutorSettings,
        mode: Literal["vcot", "notool"] = "vcot",
        plan: SamplingPlan | None = None,
        max_turns: int | None = None,
    ) -> None:
        self.query, self.mode, self.plan = query, mode, plan or SamplingPlan()
        if query.is_video:
            self.session = Session(video=list(query.images), settings=settings)
            inputs = self.session.video_frames()
            self.messages = build_messages(query.question, video=inputs, mode=mode)
        else:
            self.session = Session(images=list(query.images), settings=settings)
            inputs = [self.session.input_image(i + 1) for i in range(len(query.images))]
            self.messages = build_messages(query.question, images=inputs, mode=mode)
        # malformed calls execute nothing, so the operation limit alone would not end a rollout
        self.max_turns = max_turns or 2 * settings.max_operations + 2
        self.calls: list[CallRecord] = []
        self.turns: list[str] = []
        self.stop_reason: StopReason | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.trace: TokenTrace | None = None  # filled by token-in/out backends (`run_batch`)

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    def sampling(self) -> Sampling:
        return self.plan.for_turn(after_tool=bool(self.calls))

    @property
    def final_error(self) -> bool:
        """The reference's flag if the rollout ended now (truncated rollouts included)."""
        return final_error_of(self.calls)

    def observe(
        self, text: str, *, prompt_tokens: int = 0, completion_tokens: int = 0
    ) -> Observation | None:
        """Take one generated assistant turn; execute its call, if any, and append the result."""
        if self.done:
            raise RuntimeError(f"rollout {self.query.qid} already ended ({self.stop_reason})")
        self._take_turn(text, prompt_tokens, completion_tokens)
        if self.mode == "notool":
            self.stop_reason = "notool"
            return None
        if not parse_tool_call(text).ends_with_call:
            self.stop_reason = "answer"
            return None
        before = self.session.counters.operations
        obs = self.session.execute_text(text, tokens_used=self.prompt_tokens + completion_tokens)
        return self._record(obs, before)

    async def aobserve(
        self, text: str, *, prompt_tokens: int = 0, completion_tokens: int = 0
    ) -> Observation | None:
        """`observe` with the image work in the executor's thread pool (asyncio engines)."""
        if self.done:
            raise RuntimeError(f"rollout {self.query.qid} already ended ({self.stop_reason})")
        self._take_turn(text, prompt_tokens, completion_tokens)
        if self.mode == "notool" or not parse_tool_call(text).ends_with_call:
            self.stop_reason = "notool" if self.mode == "notool" else "answer"
            return None
        used, before = self.prompt_tokens + completion_tokens, self.session.counters.operations
        obs = await self.session.aexecute_text(text, tokens_used=used)
        return self._record(obs, before)

    def _take_turn(self, text: str, prompt_tokens: int, completion_tokens: int) -> None:
        self.turns.append(text.replace(IM_END, ""))
        self.messages.append(assistant_message(text))
        self.prompt_tokens = prompt_tokens or self.prompt_tokens
        self.completion_tokens += completion_tokens

    def _record(self, obs: Observation | None, operations_before: int) -> Observation | None:
        assert obs is not None  # the turn ends with a call, so the session answers
        executed = self.session.counters.operations > operations_before
        self.calls.append(
            CallRecord(
                turn=len(self.turns),
                name=obs.name,
                arguments=obs.arguments,
                # a call refused by a limit is not an operation (docs/method.md §2: it still counts as a call)
                executed=executed,
                ok=obs.ok,
                error=obs.error,
                n_images=len(obs.images),
                crop_box=obs.crop_box,
                target=obs.target,
                dropped=executed and obs.stop,
            )
        )
        if obs.stop:
            self.stop_reason = "limit"
            return obs
        self.messages.append(observation_message(obs))
        if len(self.turns) >= self.max_turns:
            self.stop_reason = "turn_limit"
        return obs

    def outcome(self) -> Outcome:
        if not self.done:
            raise RuntimeError(f"rollout {self.query.qid} has not ended")
        return Outcome(
            query=self.query,
            messages=self.messages,
            calls=self.calls,
            turns=self.turns,
            stop_reason=self.stop_reason,  # type: ignore[arg-type]
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            trace=self.trace,
        )

    def take_tokens(self, gen: Generation) -> None:
        """Append one turn's fed and sampled ids to the trace (token-in/out backends)."""
        if gen.ids is None:
            return
        if self.trace is None:
            self.trace = TokenTrace()
        self.trace.extend(gen)


@dataclass(frozen=True)
class Generation:
    """One generated turn. Token-in/out backends (`token_io = True`) also return the ids they
    fed before sampling (`fed`: the first prompt, or the observation since the last turn, with
    `fed_visual` their processed images), the sampled `ids` exactly as drawn (an end token only
    if the model produced it) and their sampling-time log-probabilities at temperature 1."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fed: tuple[int, ...] = ()
    fed_visual: Any = None
    ids: tuple[int, ...] | None = None
    logprobs: tuple[float, ...] = ()


@dataclass
class TokenTrace:
    """A rollout as the model saw and wrote it: every id in order, whether the policy sampled it
    (the trained tokens) or was fed it (system, question, observations, turn closers), the
    sampling-time log-probability of each sampled id (0.0 where fed), and the backend's
    processed visual inputs of each fed fragment that had images, in order."""

    ids: list[int] = field(default_factory=list)
    sampled: list[bool] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    visuals: list[Any] = field(default_factory=list)

    def extend(self, gen: Generation) -> None:
        ids = list(gen.ids or ())
        if gen.logprobs and len(gen.logprobs) != len(ids):
            raise ValueError(f"{len(gen.logprobs)} log-probs for {len(ids)} sampled ids")
        self.ids += [*gen.fed, *ids]
        self.sampled += [False] * len(gen.fed) + [True] * len(ids)
        self.logprobs += [0.0] * len(gen.fed) + list(gen.logprobs or [0.0] * len(ids))
        if gen.fed_visual is not None:
            self.visuals.append(gen.fed_visual)

    @property
    def n_sampled(self) -> int:
        return sum(self.sampled)


BatchGenerate = Callable[[Sequence[list[dict[str, Any]]], Sequence[Sampling]], list[Generation]]


def run_batch(
    rollouts: Sequence[Rollout],
    generate: BatchGenerate,
    *,
    on_turn: Callable[[int, int], None] | None = None,
) -> list[Outcome]:
    """Advance every rollout to its end, one batched `generate` call per turn.

    A token-in/out `generate` (attribute `token_io = True`) also gets each rollout's trace so
    far, continues it token for token, and the rollout appends what was fed and sampled."""
    turn = 0
    token_io = bool(getattr(generate, "token_io", False))
    while active := [r for r in rollouts if not r.done]:
        convs, samplings = [r.messages for r in active], [r.sampling() for r in active]
        if token_io:
            outs = generate(convs, samplings, traces=[r.trace for r in active])  # type: ignore[call-arg]
        else:
            outs = generate(convs, samplings)
        if len(outs) != len(active):
            raise RuntimeError(f"generate returned {len(outs)} turns for {len(active)} prompts")
        for rollout, gen in zip(active, outs, strict=True):
            rollout.take_tokens(gen)
            rollout.observe(
                gen.text, prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens
            )
        turn += 1
        if on_turn is not None:
            on_turn(turn, len(active))
    return [r.outcome() for r in rollouts]
