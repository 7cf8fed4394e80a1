"""Text-only trajectories rejection-sampled from a model (`synth.text_only.source: model`).

The paper samples its 2,000 text-only trajectories from the base model and keeps the correct
ones (docs/seeds.md). As it runs:
1. every text-only assignment not yet written becomes a `Query` (its inputs placed under
   images/ as for any trajectory) and is answered k times with the no-tool prompt (`notool`: no
   tool block, "think step by step ... \\boxed{}") through any eval backend (`BackendSpec` /
   `make_generator`: hf, vllm, openai) and the shared agent (`Rollout` / `run_batch`), at
   temperature > 0; sample j carries its own seed (a hash of `synth.seed`, the id and j), so a
   seeded vLLM engine or server does not return k copies of one answer;
2. the k answers of a query are cached as soon as its call ends (`cache/text_only/`, keyed by
   everything that decides them: backend, model, prompt, the inputs' bytes, bounds, sampling),
   so a re-run or a resumed run samples nothing twice;
3. each answer is graded with eval's graders (`score_item`; the seed's options decide choice vs
   exact match, or the authors' paper-compat matcher when `grader: paper_compat`);
4. the first correct answer (lowest j) becomes the trajectory, verbatim, in the recipe's prompt
   mode: the record synth writes for a template text-only trajectory. A query with no correct
   answer is a reject (stage `sample`), counted in stats.json. One trajectory per query: the
   mix counts trajectories, and k copies of an easy query would outweigh the rest in SFT;
5. `text_only_pass_rates.jsonl` (one line per sampled query, plan order) is derived from the
   cache at the end; stats.json summarises it under `text_only_sampling`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pixelctl.agent import BatchGenerate, Query, Rollout, Sampling, SamplingPlan, run_batch
from pixelctl.config.schema import Recipe
from pixelctl.prompt import assistant_message
from pixelctl.rundir import iter_jsonl
from pixelctl.synth.cache import ResponseCache, request_key
from pixelctl.synth.output import write_jsonl_atomic
from pixelctl.synth.plan import Assignment
from pixelctl.synth.seeds import Seed, SynthReject
from pixelctl.synth.trajectories import Reexecuted, ReexecuteError, compose, reexecute

PASS_RATES = "text_only_pass_rates.jsonl"
CACHE_DIR = "text_only"  # under the run's cache/


class SamplingError(RuntimeError):
    """The backend failed mid-run; every finished call is cached, so a resume continues."""


def sample_seed(base: int, seed_id: str, j: int) -> int:
    """Sample j's own seed: distinct per sample, the same on every run."""
    h = hashlib.sha256(f"text_only/{base}/{seed_id}/{j}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def model_name(recipe: Recipe) -> str:
    return recipe.synth.text_only.model or recipe.model.name_or_path


def backend_spec(recipe: Recipe, device: str = "cpu") -> Any:
    """The eval backend that samples (`hf`, `vllm` or `openai`), built like eval's."""
    from pixelctl.backends import BackendSpec

    t = recipe.synth.text_only
    bounds = recipe.executor.bounds.train
    return BackendSpec(
        kind=t.backend,
        model_path=model_name(recipe),
        dtype=recipe.model.dtype,
        device=device,
        seed=recipe.synth.seed,
        batch_size=t.batch_size,
        base_url=t.base_url,
        model_name=model_name(recipe),
        api_key_env=t.api_key_env,
        concurrency=t.concurrency,
        processor_min_pixels=bounds.processor_min_pixels,
        processor_max_pixels=bounds.processor_max_pixels,
        max_images=recipe.executor.max_images,
    )


def _device(recipe: Recipe) -> str:
    if recipe.launch.device != "auto" or recipe.synth.text_only.backend == "openai":
        return "cpu" if recipe.launch.device == "auto" else recipe.launch.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def grade(seed: Seed, text: str, grader: str) -> float:
    """1.0 when eval's graders accept the answer (`grader`: 'exact' or 'paper_compat')."""
    from pixelctl.evaluation.metrics import score_item

    answer: Any = seed.answer if seed.options else list(seed.answers)
    scores = score_item("procedural", text, answer, list(seed.options) or None)
    return float(scores["paper_compat" if grader == "paper_compat" else "accuracy"])


class TextSampler:
    """Samples, caches and grades the text-only queries of one synthesis run."""

    def __init__(self, recipe: Recipe, out: Path, *, generate: BatchGenerate | None = None) -> None:
        self.recipe, self.out, self.cfg = recipe, out, recipe.synth.text_only
        self.settings = recipe.executor.settings("train")
        self.cache = ResponseCache(out / "cache" / CACHE_DIR)
        self._generate = generate
        self._queries: dict[str, tuple[Query, str, Reexecuted]] = {}
        self._grades: dict[str, list[float]] = {}
        self.failed: dict[str, str] = {}  # seed id -> why it could not be asked (not cached)
        self.stats = {"sampled_queries": 0, "cached_queries": 0, "calls": 0, "samples": 0}

    # ------------------------------------------------------------------ queries and keys
    def query(self, seed: Seed) -> tuple[Query, str]:
        """The no-tool query of a seed (inputs placed in the dataset) and its cache key."""
        if seed.id not in self._queries:
            rep = reexecute(seed, [], self.settings, self.out)
            files = [self.out / p for p in rep.inputs]
            q = Query(
                qid=seed.id,
                question=seed.question,
                images=tuple(str(f) for f in files),
                is_video=seed.is_video,
                answer=list(seed.answers),
                benchmark="procedural",
                options=tuple(seed.options) or None,
            )
            t = self.cfg
            key = request_key(
                {
                    "what": "text_only_samples/v1",
                    "backend": t.backend,
                    "model": model_name(self.recipe),
                    "mode": "notool",
                    "question": seed.question,
                    "inputs": [_digest(f) for f in files],
                    "is_video": seed.is_video,
                    "bounds": asdict(self.settings.bounds),
                    "k": t.k,
                    "temperature": t.temperature,
                    "top_p": t.top_p,
                    "max_new_tokens": t.max_new_tokens,
                    "seeds": [sample_seed(self.recipe.synth.seed, seed.id, j) for j in range(t.k)],
                }
            )
            self._queries[seed.id] = (q, key, rep)
        q, key, _ = self._queries[seed.id]
        return q, key

    def entry(self, seed: Seed) -> dict[str, Any] | None:
        return self.cache.get(self.query(seed)[1])

    # ------------------------------------------------------------------ sampling
    def _generator(self) -> BatchGenerate:
        if self._generate is None:
            from pixelctl.backends import make_generator

            self._generate = make_generator(backend_spec(self.recipe, _device(self.recipe)))
        return self._generate

    def sample(
        self, assignments: Sequence[Assignment], on_call: Callable[[int, int], None] | None = None
    ) -> None:
        """Sample every text-only assignment whose answers are not cached yet (blocking)."""
        todo = []
        for a in assignments:
            if a.kind != "text_only":
                continue
            try:
                hit = self.entry(a.seed) is not None
            except (ReexecuteError, OSError, ValueError) as exc:
                self.failed[a.seed.id] = f"{type(exc).__name__}: {exc}"
                continue
            if hit:
                self.stats["cached_queries"] += 1
            else:
                todo.append(a.seed)
        n = self.cfg.queries_per_call
        calls = [todo[i : i + n] for i in range(0, len(todo), n)]
        for c, seeds in enumerate(calls, start=1):
            self._sample_call(seeds)
            if on_call is not None:
                on_call(c, len(calls))

    def _sample_call(self, seeds: Sequence[Seed]) -> None:
        t = self.cfg
        rollouts: list[Rollout] = []
        asked: list[Seed] = []
        for seed in seeds:
            q, _ = self.query(seed)
            try:
                rs = [
                    Rollout(
                        q,
                        settings=self.settings,
                        mode="notool",
                        plan=SamplingPlan(
                            Sampling(
                                t.temperature,
                                t.top_p,
                                t.max_new_tokens,
                                seed=sample_seed(self.recipe.synth.seed, seed.id, j),
                            )
                        ),
                    )
                    for j in range(t.k)
                ]
            except (OSError, ValueError) as exc:  # ImageLoadError is an OSError/ValueError
                self.failed[seed.id] = f"{type(exc).__name__}: {exc}"
                continue
            rollouts += rs
            asked.append(seed)
        if not rollouts:
            return
        try:
            outcomes = run_batch(rollouts, self._generator())
        except Exception as exc:
            done = self.stats["sampled_queries"]
            raise SamplingError(
                f"text-only sampling failed ({type(exc).__name__}: {exc}); the {done} queries "
                "sampled before it are cached: fix the backend and resume the run (--resume)"
            ) from exc
        self.stats["calls"] += 1
        for i, seed in enumerate(asked):
            mine = outcomes[i * t.k : (i + 1) * t.k]
            self.cache.put(
                self.query(seed)[1],
                {
                    "id": seed.id,
                    "texts": [o.final_text for o in mine],
                    "stop": [o.stop_reason for o in mine],
                    "input_tokens": sum(o.prompt_tokens for o in mine),
                    "output_tokens": sum(o.completion_tokens for o in mine),
                },
            )
            self.stats["sampled_queries"] += 1
            self.stats["samples"] += len(mine)

    # ------------------------------------------------------------------ grading and records
    def grades(self, seed: Seed) -> list[float] | None:
        entry = self.entry(seed)
        if entry is None:
            return None
        if seed.id not in self._grades:
            self._grades[seed.id] = [grade(seed, x, self.cfg.grader) for x in entry["texts"]]
        return self._grades[seed.id]

    def build(self, a: Assignment, mode: str) -> dict[str, Any] | SynthReject:
        """The SFT record of a sampled text-only assignment, or why there is none."""
        seed = a.seed
        if seed.id in self.failed:
            return SynthReject(seed.id, seed.file, seed.line, self.failed[seed.id], stage="sample")
        scores = self.grades(seed)
        if scores is None:
            return SynthReject(seed.id, seed.file, seed.line, "not sampled", stage="sample")
        if 1.0 not in scores:
            return SynthReject(
                seed.id,
                seed.file,
                seed.line,
                f"no correct answer in k={len(scores)} samples (pass rate 0)",
                stage="sample",
            )
        j = scores.index(1.0)
        text = self.entry(seed)["texts"][j]  # type: ignore[index]
        rep = self._queries[seed.id][2]
        record = compose(a, "text_only", rep, {"text_only": ""}, mode)
        record["message_list"][-1] = assistant_message(text)  # the model's answer, verbatim
        record["sampled"] = {
            "model": model_name(self.recipe),
            "k": len(scores),
            "correct": int(sum(scores)),
            "kept": j,
        }
        return record

    def write_pass_rates(self, assignments: Sequence[Assignment]) -> int:
        """text_only_pass_rates.jsonl from the cache, in plan order; returns its line count."""
        rows = []
        for a in assignments:
            if a.kind != "text_only" or a.seed.id in self.failed:
                continue
            scores = self.grades(a.seed)
            if scores is None:
                continue
            correct = int(sum(scores))
            rows.append(
                {
                    "id": a.seed.id,
                    "source": a.seed.source,
                    "k": len(scores),
                    "correct": correct,
                    "pass_rate": round(correct / len(scores), 6),
                    "kept": scores.index(1.0) if correct else None,
                    "scores": scores,
                }
            )
        write_jsonl_atomic(self.out / PASS_RATES, rows)
        return len(rows)

    def close(self) -> None:
        self.cache.close()


def pass_rate_summary(out: Path) -> dict[str, Any] | None:
    """stats.json's `text_only_sampling`: read from the pass-rate file (None without one)."""
    rows = list(iter_jsonl(out / PASS_RATES)) if (out / PASS_RATES).is_file() else []
    if not rows:
        return None
    samples = sum(r["k"] for r in rows)
    correct = sum(r["correct"] for r in rows)
    return {
        "queries": len(rows),
        "samples": samples,
        "correct": correct,
        "pass_rate": round(correct / samples, 6) if samples else 0.0,
        "mean_pass_rate_per_query": round(sum(r["pass_rate"] for r in rows) / len(rows), 6),
        "kept": sum(r["kept"] is not None for r in rows),
        "none_correct": sum(r["kept"] is None for r in rows),
        "correct_histogram": {
            str(c): n for c, n in sorted(Counter(r["correct"] for r in rows).items())
        },
    }


__all__ = ["PASS_RATES", "SamplingError", "TextSampler", "pass_rate_summary", "sample_seed"]
