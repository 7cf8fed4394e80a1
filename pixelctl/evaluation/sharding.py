"""Data-parallel eval over Ray actors: one per GPU (hf, vllm), or CPU workers.

Each actor builds its own backend from the picklable `BackendSpec` and receives the
`RunSettings` (pixel bounds, limits, prompt mode) by value, so no setting depends on a
worker's environment. Chunks are handed out as actors free up; the driver writes each
finished chunk at once (resume keeps it) and `run_eval` rewrites the file in dataset order at
the end. Chunks are the same as in a single-worker run, so the records are identical.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelctl.agent import Query
from pixelctl.backends import BackendSpec, make_generator
from pixelctl.evaluation.chunks import RunSettings, evaluate_chunk


class _Worker:
    """The actor body (wrapped with `ray.remote` at run time, so importing needs no Ray)."""

    def __init__(self, spec: BackendSpec, settings: RunSettings, out_dir: str, threads: int):
        if spec.device == "cpu":
            import torch

            torch.set_num_threads(threads)  # CPU workers share the cores instead of fighting
        self.generate = make_generator(spec)
        self.settings, self.out_dir = settings, Path(out_dir)

    def run(self, chunk: list[Query]) -> list[dict[str, Any]]:
        return evaluate_chunk(chunk, self.generate, self.settings, self.out_dir)


def _ray_init() -> None:
    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)


def run_sharded(
    todo: list[list[Query]],
    spec: BackendSpec,
    settings: RunSettings,
    out_dir: Path,
    workers: int,
    write: Callable[[list[dict[str, Any]]], None],
) -> None:
    """Run `todo` chunks on `workers` actors; `write` each chunk's records as it finishes."""
    import ray

    if not todo:
        return
    _ray_init()
    gpu = spec.device != "cpu"
    n = min(workers, len(todo))
    cpus = int(ray.available_resources().get("CPU", 1))
    threads = max(1, cpus // n)
    actor_cls = ray.remote(num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1)(_Worker)
    actors = [actor_cls.remote(spec, settings, str(out_dir), threads) for _ in range(n)]
    pending: dict[Any, Any] = {}
    queue = list(todo)
    try:
        for actor in actors:
            if queue:
                pending[actor.run.remote(queue.pop(0))] = actor
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(ready)
            write(ray.get(ready))
            if queue:
                pending[actor.run.remote(queue.pop(0))] = actor
    finally:
        for actor in actors:
            ray.kill(actor)
