"""What a writer is asked for, and what it reports back.

A trajectory has up to three free-text pieces around its operations (docs/method.md §7): the analysis of
the whole input, a reflection on a missed operation, and the analysis of the returned detail
(or, for text-only, one answer from the whole input). A `Job` carries everything a writer may
use: the question, the gold answer, the annotation facts and the images it should look at.
Writers never emit tool calls or the final `\\boxed{}`: the trajectory builder adds those, so
they are always well formed and always carry the gold answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Task = Literal["describe", "reflect", "detail", "text_only"]
TASKS: tuple[Task, ...] = ("describe", "reflect", "detail", "text_only")


@dataclass(frozen=True)
class Job:
    task: Task
    seed_id: str
    source: str  # image | web | video | procedural
    question: str
    answer: str
    target: str  # what the cue is ("the sign", "the text region", "frames 3 to 5")
    where: str = ""  # the cue's place in words ("upper right", "frames 4-6")
    detail: str = ""  # what the cue shows, from the annotation ("reads 'OPEN'")
    caption: str = ""  # what the whole input shows, when annotated
    miss: str = ""  # reflect only: how the erroneous operation missed ("displaced", "too_wide"...)
    images: tuple[Path, ...] = ()  # what an LLM writer should look at


class WriterError(RuntimeError):
    """A job the writer could not complete (retries exhausted, endpoint refused)."""


@dataclass
class WriterStats:
    requests: int = 0  # HTTP attempts, retries included
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0  # jobs given up after the last retry
    input_tokens: int = 0  # paid in this process (cache hits cost nothing)
    output_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # "429", "500", "timeout", ...

    def as_dict(self) -> dict[str, object]:
        return asdict(self)  # a deep copy: `errors` included


class Writer(Protocol):
    stats: WriterStats

    async def write(self, job: Job) -> str: ...

    async def aclose(self) -> None: ...
