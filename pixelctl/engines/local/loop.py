"""The single-machine engine: curiosity-driven GRPO with selective sample replay, one process.

Each round, exactly as it runs:
  1. take round r's queries from `pixelctl.rl.schedule` (episode e shuffles the prompt pool
     with seed + e and is cut into rounds of `rollout.prompts_per_round`, the last one partial,
     exactly as OpenRLHF does; `rl.max_rounds` shrinks the pool or the episodes the same way);
  2. roll out `rollout.n_samples` trajectories per query with the shared agent (temperature 1.0,
     top-p 0.95; the reference's lower temperature after a tool call when configured);
  3. grade each with the reference matcher in training mode (1, 0, −1 unparsable), shape the
     rewards of each query's group (`pixelctl.rl.rewards`, paper or reference mode) and centre
     them per group (std division optional);
  4. choose the round's training set with `pixelctl.rl.selection.select_training_set`, the
     function the OpenRLHF hook calls too (zero-signal filter, SSR, refill, seeds);
  5. compute the old policy's log-probs, then take `trajectories // optim.batch_size` optimizer
     steps of AdamW (the schedule's cosine-with-min-lr or constant factor, as OpenRLHF's
     DeepSpeed scheduler; warm-up; grad clip), each accumulating
     micro-batches of the clipped token-mean loss (plus `optim.kl_coef` × the k3 KL to the
     frozen starting model and − `optim.entropy_coef` × the entropy, when set; both 0 in the
     paper's run);
  6. log one metrics line per optimizer step, save sampled rollouts, checkpoint every
     `save_every_rounds` rounds (model, optimizer, scheduler, RNG, replay buffer, counters).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from pixelctl.agent import Outcome, Rollout, Sampling, SamplingPlan, run_batch
from pixelctl.config.schema import Recipe
from pixelctl.engines.local.checkpoint import latest_checkpoint, load_state, save_state
from pixelctl.engines.local.policy import Policy, Reference
from pixelctl.engines.local.samples import RoundTracker, save_samples
from pixelctl.engines.local.store import TrajectoryStore
from pixelctl.errors import StageError
from pixelctl.executor import ImageLoadError
from pixelctl.grading import paper_compat_score
from pixelctl.queries import QuerySet
from pixelctl.rejects import REJECTS_FILE, Reject
from pixelctl.rejects import append as append_reject
from pixelctl.rl.loss import policy_loss
from pixelctl.rl.rewards import group_advantages, shape_group, view_rollout
from pixelctl.rl.schedule import plan_schedule
from pixelctl.rl.selection import SelectionSettings, select_training_set
from pixelctl.rundir import RunDir


class LocalEngine:
    def __init__(
        self,
        recipe: Recipe,
        run: RunDir,
        data: QuerySet,
        model_path: str,
        *,
        reference_path: str | None = None,
    ) -> None:
        """`model_path`: the weights to start from (a checkpoint when resuming);
        `reference_path`: the KL term's reference, the run's starting model (default:
        `model_path`); loaded only when `rl.optim.kl_coef > 0`."""
        self.recipe, self.run, self.queries = recipe, run, data.queries
        rl = recipe.rl
        device = "cpu" if recipe.launch.device == "cpu" or not torch.cuda.is_available() else "cuda"
        torch.manual_seed(rl.seed)
        dtype = recipe.model.dtype
        self.policy = Policy(
            model_path,
            dtype=dtype,
            device=device,
            freeze_vision=recipe.model.freeze_vision,
            seed=rl.seed,
        )
        self.reference = (
            Reference(reference_path or model_path, dtype=dtype, device=device)
            if rl.optim.kl_coef > 0
            else None
        )
        self.generate = self.policy.generator  # the rollouts' generate function (replaceable)
        self.settings = recipe.executor.settings("train")
        ro = rl.rollout
        self.sampling = SamplingPlan(
            Sampling(ro.temperature, ro.top_p, ro.max_new_tokens), ro.temperature_after_tool
        )
        self.plan = plan_schedule(rl, len(self.queries))  # the one arithmetic (rl.schedule)
        o = rl.optim
        self.optimizer = torch.optim.AdamW(
            self.policy.trainable(), lr=o.lr, betas=o.adam_betas, weight_decay=o.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: self.plan.lr_factor(
                step, min_lr_ratio=o.min_lr_ratio, kind=o.lr_scheduler
            ),
        )
        self.selection = SelectionSettings.from_recipe(rl)
        self.replay = self.selection.make_replay()
        self.store = TrajectoryStore()
        self.round = 0  # rounds completed
        self.step = 0  # optimizer steps taken
        self.skipped = 0  # prompts skipped at run time (unreadable images)

    def skip(self, query: Any, r: int, exc: Exception) -> None:
        """Record a prompt that failed while running (the shared rule, `pixelctl.rejects`)."""
        reason = f"round {r + 1}: {type(exc).__name__}: {exc}"
        append_reject(
            self.run.path / REJECTS_FILE, Reject("rl.data", None, query.qid, reason, "run")
        )
        self.skipped += 1
        print(f"skipped {query.qid}: {reason}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "step": self.step,
            "replay": self.replay.state_dict(),
            "generator": self.policy.generator.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def restore(self, folder: Path) -> None:
        state = load_state(folder, self.optimizer, self.scheduler)
        self.round, self.step = state["round"], state["step"]
        self.replay.load_state_dict(state["replay"])
        self.policy.generator.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.store = TrajectoryStore.load(folder / "replay")

    def save(self, name: str) -> Path:
        self.store.keep_only({tid for tid, _ in self.replay.buffer})
        return save_state(
            self.run.path / "checkpoints" / name,
            self.policy,
            self.optimizer,
            self.scheduler,
            self.state(),
            self.store,
        )

    # ------------------------------------------------------------------ one round
    def rollouts(self, r: int) -> tuple[list[Outcome], dict[str, float]]:
        rl = self.recipe.rl
        idx = self.plan.round_prompts(r, rl.seed)
        rollouts = []
        for i in idx:
            # A prompt whose image passed the up-front header check but does not decode is a
            # counted skip (rejects.jsonl, phase "run"), not a crash: its group is left out.
            try:
                group = [
                    Rollout(
                        self.queries[i],
                        settings=self.settings,
                        mode=self.recipe.prompt.mode,
                        plan=self.sampling,
                    )
                    for _ in range(rl.rollout.n_samples)
                ]
            except (ImageLoadError, OSError, ValueError) as exc:
                self.skip(self.queries[i], r, exc)
                continue
            rollouts += group
        if not rollouts:
            raise StageError(
                f"round {r + 1}: every prompt failed to load (see {self.run.path / REJECTS_FILE})"
            )
        timer = {"generation": 0.0}

        token_io = bool(getattr(self.generate, "token_io", False))

        def generate(convs, samplings, **kw):
            t = time.perf_counter()
            out = self.generate(convs, samplings, **kw)
            timer["generation"] += time.perf_counter() - t
            return out

        generate.token_io = token_io  # type: ignore[attr-defined]  # run_batch passes traces

        t0 = time.perf_counter()
        outcomes = run_batch(rollouts, generate)
        total = time.perf_counter() - t0
        return outcomes, {
            "generation": timer["generation"],
            "executor": total - timer["generation"],
        }

    def rewards(self, outcomes: list[Outcome]) -> tuple[list[float], list[float], dict[str, float]]:
        rl, n = self.recipe.rl, self.recipe.rl.rollout.n_samples
        for o in outcomes:
            answers = o.query.answer if isinstance(o.query.answer, list) else [o.query.answer]
            o.correct = paper_compat_score(o.response, [str(a) for a in answers], training=True)
        rewards, parts = [], {"curiosity": 0.0, "penalty": 0.0, "rapr": 0.0}
        for g in range(0, len(outcomes), n):
            views = [view_rollout(o, o.correct, count=rl.reward.count) for o in outcomes[g : g + n]]
            shaped = shape_group(
                views,
                mode=rl.reward.mode,
                alpha=rl.reward.alpha,
                beta=rl.reward.beta,
                H=rl.reward.H,
                N=rl.reward.N,
            )
            rewards += shaped.rewards
            parts["curiosity"] += shaped.stats.curiosity_mean
            parts["penalty"] += shaped.stats.penalty_mean
            parts["rapr"] += shaped.stats.rapr
        groups = len(outcomes) // n
        stats = {k: v / groups for k, v in parts.items()}
        stats["accuracy"] = sum(max(o.correct, 0.0) for o in outcomes) / len(outcomes)
        stats["reward_mean"] = sum(rewards) / len(rewards)
        advantages = group_advantages(rewards, n, std_norm=rl.optim.std_norm)
        return rewards, advantages, stats

    def select(
        self, r: int, outcomes: list[Outcome], rewards: list[float], advantages: list[float]
    ) -> tuple[list[tuple[str, float]], dict[str, float]]:
        """The round's training set as (trajectory id, advantage) pairs (`rl.selection`)."""
        ids = [f"r{r:05d}-{i:05d}" for i in range(len(outcomes))]
        for tid, o, a in zip(ids, outcomes, advantages, strict=True):
            self.store.put(tid, o, a)  # keeps the rollout's token trace
        chosen = select_training_set(
            rewards,
            advantages,
            ids,
            group_size=self.recipe.rl.rollout.n_samples,
            round_index=r,
            settings=self.selection,
            replay=self.replay,
        )
        pairs = [(t, self.store.advantage(t)) for t in chosen.payloads]
        self.store.keep_only(set(chosen.payloads) | {t for t, _ in self.replay.buffer})
        # an episode's partial last round drops the incomplete batch, as OpenRLHF's actor does
        train = self.plan.steps_in_round(r) * self.recipe.rl.optim.batch_size
        return pairs[:train], chosen.counts()

    def update(self, pairs: list[tuple[str, float]]) -> list[dict[str, float]]:
        o = self.recipe.rl.optim
        traces = [self.store.get(t) for t, _ in pairs]  # the ids exactly as sampled
        adv = torch.tensor([a for _, a in pairs], dtype=torch.float32)
        micro = o.micro_batch_size
        old, ref = [], []
        with torch.no_grad():
            for s in range(0, len(traces), micro):
                batch, mask = self.policy.encode(traces[s : s + micro])
                old.append(self.policy.logprobs(batch, mask).logprobs)
                if self.reference is not None:
                    ref.append(self.reference.logprobs(batch))
        keys = ["loss", "pg_loss", "clip_frac"]
        keys += ["kl"] if self.reference is not None else []
        keys += ["entropy"] if o.entropy_coef else []
        logs = []
        self.policy.model.train()
        for start in range(0, len(traces), o.batch_size):
            stop = min(start + o.batch_size, len(traces))
            n_micro = math.ceil((stop - start) / micro)
            totals = dict.fromkeys(keys, 0.0)
            for s in range(start, stop, micro):
                batch, mask = self.policy.encode(traces[s : s + micro])
                scored = self.policy.logprobs(batch, mask, entropy=bool(o.entropy_coef))
                out = policy_loss(
                    scored.logprobs,
                    old[s // micro],
                    adv[s : s + micro].to(scored.logprobs.device),
                    scored.mask,
                    clip_low=o.clip_low,
                    clip_high=o.clip_high,
                    ref_logprobs=ref[s // micro] if ref else None,
                    kl_coef=o.kl_coef,
                    entropy=scored.entropy,
                    entropy_coef=o.entropy_coef,
                )
                (out.loss / n_micro).backward()
                for key in totals:
                    totals[key] += float(getattr(out, key).detach()) / n_micro
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.trainable(), o.grad_clip)
            lr = self.scheduler.get_last_lr()[0]
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            logs.append({**totals, "grad_norm": float(grad_norm), "lr": lr, "step": self.step})
        self.policy.model.eval()
        return logs

    def run_round(self, r: int) -> list[dict[str, Any]]:
        outcomes, times = self.rollouts(r)
        t = time.perf_counter()
        rewards, advantages, stats = self.rewards(outcomes)
        times["reward"] = time.perf_counter() - t
        pairs, info = self.select(r, outcomes, rewards, advantages)
        t = time.perf_counter()
        logs = self.update(pairs)
        times["update"] = time.perf_counter() - t
        save_samples(
            self.run.path / "samples",
            r,
            outcomes[: self.recipe.rl.rollout.n_samples],
            rewards,
            advantages,
        )
        common = {
            "round": r + 1,
            **{k: round(v, 6) for k, v in stats.items()},
            "calls_per_rollout": sum(o.n_calls for o in outcomes) / len(outcomes),
            "response_tokens": sum(o.completion_tokens for o in outcomes) / len(outcomes),
            "well_formed_calls": _well_formed(outcomes),
            # both readings of "used pixel-space reasoning", whichever rl.reward.count rewards
            "rapr_attempts": sum(o.n_calls > 0 for o in outcomes) / len(outcomes),
            "rapr_executed": sum(view_rollout(o, o.correct).n_operations > 0 for o in outcomes)
            / len(outcomes),
            **info,
            **{f"time_{k}": round(v, 4) for k, v in times.items()},
        }
        return [{**common, **log} for log in logs] or [common]  # a round too small to step


def _well_formed(outcomes: list[Outcome]) -> float:
    calls = [c for o in outcomes for c in o.calls]
    return sum(c.name is not None for c in calls) / len(calls) if calls else 0.0


def train(recipe: Recipe, run: RunDir, data: QuerySet, model_path: str, *, progress=None) -> Path:
    """Run (or resume) every round; returns the final model folder.

    Resume is exact: the state comes from the newest complete checkpoint and metrics.jsonl is
    cut back to its step (one resume marker instead of the discarded tail), so no step is ever
    logged twice. A resumed run with no checkpoint refuses unless `--restart`."""
    ckpt = latest_checkpoint(run.path / "checkpoints")
    if run.restart:
        shutil.rmtree(run.path / "checkpoints", ignore_errors=True)
        ckpt = None
        run.rewind_metrics(lambda rec: False, restart=True)
    elif ckpt is None and run.resumed:
        raise StageError(
            f"{run.path} has no checkpoint to resume from (one is saved every "
            f"{recipe.rl.save_every_rounds} rounds); start it again from round 1 with "
            f"`pixelctl rl --resume {run.path} --restart`"
        )
    engine = LocalEngine(
        recipe, run, data, str(ckpt) if ckpt else model_path, reference_path=model_path
    )
    if ckpt is not None:  # the weights came from the checkpoint; now the rest of the state
        engine.restore(ckpt)
        run.rewind_metrics(
            lambda rec: rec.get("step", 0) <= engine.step,
            from_round=engine.round,
            from_step=engine.step,
        )
    (run.path / "plan.json").write_text(json.dumps(engine.plan.as_dict(), indent=2))
    every = recipe.rl.save_every_rounds
    if progress is not None:  # "round 0/N" from the start, not "0/None"
        progress(engine.round, engine.plan.rounds, None)
    tracker = RoundTracker(recipe, run.path, resume_step=engine.step + 1 if ckpt else None)
    for r in range(engine.round, engine.plan.rounds):
        record: dict[str, Any] = {}
        for record in engine.run_round(r):
            run.log_metrics(record)
            tracker.log(record, engine.step)  # TensorBoard / W&B: the same scalars
        tracker.rollouts(r, engine.step)
        engine.round = r + 1
        if progress is not None and record:
            progress(engine.round, engine.plan.rounds, record)
        if engine.round % every == 0 and engine.round < engine.plan.rounds:
            engine.save(f"round-{engine.round:05d}")
    tracker.close()
    return engine.save("final")
