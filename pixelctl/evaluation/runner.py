"""The eval loop: chunks of queries → multi-turn rollouts → scored records, resumable.

Protocol (docs/method.md §3, §8): the recipe's prompt mode (`vcot` with tools, or the `notool`
baseline), greedy decoding, the eval pixel bounds, and the same `Rollout`/`run_batch` agent
and limits as RL. Images the model sees are clamped once more to the processor bounds
(`processor_min/max_pixels`, 512·28²…5120·28² for the 7B eval) as the reference's processor
does, whatever the backend.

Determinism and resume: the data is cut into fixed chunks (consecutive items of one
benchmark, `chunk_size` each) before anything is skipped, and every chunk is generated as one
batch, so an item always shares its batch with the same neighbours: a resumed run, or a run
split across Ray workers, produces the same records as one uninterrupted single-worker run.
A finished chunk is appended to `samples.jsonl` at once; a re-run skips chunks whose items are
all recorded and re-runs a partly written one, keeping the records already there. At the end
the file is rewritten in dataset order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pixelctl.agent import BatchGenerate, Query
from pixelctl.backends import BackendSpec, make_generator
from pixelctl.evaluation import records as rec
from pixelctl.evaluation.chunks import RunSettings, chunks, evaluate_chunk


def run_eval(
    queries: Sequence[Query],
    out_dir: Path,
    settings: RunSettings,
    *,
    generate: BatchGenerate | None = None,
    backend: BackendSpec | None = None,
    workers: int = 1,
    on_chunk: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every query not yet in `out_dir/samples.jsonl`; return all records in order.

    `generate` runs in this process; otherwise `backend` is built here (workers == 1) or in
    `workers` Ray actors (hf, vllm).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = out_dir / rec.SAMPLES_FILE
    rec.drop_torn_tail(samples)
    done = {r["qid"] for r in rec.read_records(samples)}
    todo = [c for c in chunks(queries, settings.chunk_size) if any(q.qid not in done for q in c)]
    finished = 0

    def write(records: list[dict[str, Any]]) -> None:
        nonlocal finished
        fresh = [r for r in records if r["qid"] not in done]
        rec.append_records(samples, fresh)
        done.update(r["qid"] for r in fresh)
        finished += 1
        if on_chunk is not None:
            on_chunk(finished, len(todo))

    if generate is None and backend is None:
        raise ValueError("run_eval needs a generate function or a backend spec")
    if generate is None and workers > 1 and backend is not None and backend.kind != "openai":
        from pixelctl.evaluation.sharding import run_sharded

        run_sharded(todo, backend, settings, out_dir, workers, write)
    else:
        gen = generate if generate is not None else make_generator(backend)  # type: ignore[arg-type]
        for chunk in todo:
            write(evaluate_chunk(chunk, gen, settings, out_dir))
    return rec.rewrite_in_order(samples, [q.qid for q in queries])
