"""pixelctl's multi-turn agent for OpenRLHF 0.11.2 (`--train.agent_func_path THIS_FILE`).

OpenRLHF loads this file by path inside every vLLM engine and builds `AgentExecutor()`. For
each sample, OpenRLHF's own `MultiTurnAgentExecutor` drives the loop; this file supplies:

- `AgentExecutor.execute`: fits the prompt images to the recipe's pixel bounds before the
  processor sees them (OpenRLHF would feed the raw files), and wraps the vLLM engine so that a
  turn never generates more than `rl.rollout.max_new_tokens` (OpenRLHF sets each turn's budget
  to the whole remaining context) and so that the agent knows the real token counts.
- `AgentInstance`: one `pixelctl.agent.Rollout` per sample, rebuilt from the label JSON.
  `step` hands the action text to the rollout (image work in the executor's thread pool, off
  the event loop), and answers with the observation as a user turn in chat markup, one
  `<|image_pad|>` per returned image (the processor expands it), the images themselves as
  `environment_images`, and the temperature for the next turn (reference: 0.9 after a call).

Reward: `scores` is accuracy (1/0, what dynamic filtering and eval read); `rewards` sum to the
accuracy term of the recipe's reward mode. The group terms (curiosity, penalty) need the whole
group, so the patched `SamplesGenerator` rewrites the rewards from `extra_logs` (pixelctl/*).
Every setting comes from the job's runtime env (job.py), never from defaults: a missing
variable is an error, because settings that silently fell back broke reproductions before.
"""

# No `from __future__ import annotations`: OpenRLHF execs this file without registering it in
# sys.modules, and dataclasses cannot resolve string annotations of such a module.
import asyncio
import copy
import json
import logging
import os
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from openrlhf.utils.agent import AgentInstanceBase, MultiTurnAgentExecutor

from pixelctl.agent import Rollout, SamplingPlan
from pixelctl.engines.openrlhf.data import parse_label
from pixelctl.engines.openrlhf.job import EXECUTOR_ENV, PROMPT_ENV, REWARD_ENV, ROLLOUT_ENV
from pixelctl.executor import ExecutorSettings, Session
from pixelctl.models.qwen import IM_END, IMAGE_MARKUP, turn_header
from pixelctl.rl.rewards import RolloutView, shaped_rewards, view_rollout

LOG = "pixelctl/"  # extra_logs prefix: the group hook reads these, the trainer logs them
logger = logging.getLogger("pixelctl.agent")


@dataclass(frozen=True)
class PluginConfig:
    """Everything the agent needs, rebuilt on the worker from the job's environment."""

    settings: ExecutorSettings
    prompt_mode: str = "vcot"
    reward_mode: str = "paper"
    reward_count: str = "attempts"  # rl.reward.count: what counts as a tool call
    temperature_after_tool: float | None = 0.9
    max_new_tokens: int | None = 2048

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "PluginConfig":
        from pixelctl.config.schema import ExecutorConfig

        env = dict(os.environ if env is None else env)
        missing = [k for k in (EXECUTOR_ENV, PROMPT_ENV, REWARD_ENV, ROLLOUT_ENV) if k not in env]
        if missing:
            raise RuntimeError(
                f"pixelctl agent: {', '.join(missing)} not set on this Ray worker. Launch with "
                "`pixelctl rl RECIPE` (it puts them in the job's runtime env), or pass the "
                "runtime env printed by `pixelctl rl RECIPE --dry-run`."
            )
        rollout = json.loads(env[ROLLOUT_ENV])
        executor = ExecutorConfig.model_validate_json(env[EXECUTOR_ENV])
        reward = json.loads(env[REWARD_ENV])
        if lacking := [k for k in ("mode", "count") if k not in reward]:
            raise RuntimeError(f"pixelctl agent: {REWARD_ENV} lacks {', '.join(lacking)}")
        return cls(
            settings=executor.settings("train"),
            prompt_mode=env[PROMPT_ENV],
            reward_mode=reward["mode"],
            reward_count=reward["count"],
            temperature_after_tool=rollout.get("temperature_after_tool"),
            max_new_tokens=rollout.get("max_new_tokens"),
        )


@dataclass
class _Turn:
    """What the engine wrapper saw of the last generation (the agent sees only text)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ended_with_eos: bool = False
    max_length: int | None = None  # OpenRLHF's context (--data.max_len)
    tokenizer: Any = None  # OpenRLHF's processor, to count an observation's tokens


# One per sample: `execute` runs as its own asyncio task (OpenRLHF gathers the samples), and the
# instance it creates reads it from the same task.
_TURN: ContextVar[_Turn | None] = ContextVar("pixelctl_turn", default=None)


class _CappedEngine:
    """The vLLM engine as the executor sees it: per-turn token cap, token counts recorded."""

    def __init__(self, engine: Any, cap: int | None, eos_ids: set[int], turn: _Turn) -> None:
        self.engine, self.cap, self.eos_ids, self.turn = engine, cap, eos_ids, turn

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        if self.cap and (sampling_params.max_tokens or self.cap + 1) > self.cap:
            sampling_params.max_tokens = self.cap  # the executor passes us its own deep copy
        out = await self.engine.generate(
            prompt_token_ids, sampling_params, multi_modal_data=multi_modal_data
        )
        ids = list(out.outputs[0].token_ids)
        self.turn.prompt_tokens = len(prompt_token_ids)
        self.turn.completion_tokens = len(ids)
        self.turn.ended_with_eos = bool(ids) and ids[-1] in self.eos_ids
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def _fit_inputs(paths: list[str], is_video: bool, settings: ExecutorSettings) -> list:
    """The prompt images exactly as the executor sees them (decoded once, cached by file)."""
    if is_video:
        return Session(video=paths, settings=settings).video_frames()
    session = Session(images=paths, settings=settings)
    return [session.input_image(i + 1) for i in range(len(paths))]


class AgentInstance(AgentInstanceBase):
    """One sample's rollout: the label names the query, `step` executes the model's calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.config: PluginConfig = kwargs.get("config") or _config()
        self.turn = _TURN.get() or _Turn()
        self.rollout: Rollout | None = None
        self.last_base = 0.0

    async def reset(self, states: dict, **kwargs: Any) -> dict:
        query = parse_label(states["label"])
        cfg = self.config
        mode = "notool" if cfg.prompt_mode == "notool" else "vcot"
        # building the rollout decodes the inputs: a thread, never the engine's event loop
        self.rollout = await asyncio.to_thread(
            Rollout, query, settings=cfg.settings, mode=mode, plan=SamplingPlan()
        )
        return {"observation": states["observation"]}

    async def step(self, states: dict, **kwargs: Any) -> dict:
        import torch

        rollout = self.rollout
        if rollout is None:
            raise RuntimeError("step() before reset(): OpenRLHF's executor always resets first")
        text = states["action_text"]
        obs = await rollout.aobserve(
            text,
            prompt_tokens=self.turn.prompt_tokens,
            completion_tokens=self.turn.completion_tokens,
        )
        correct = await asyncio.to_thread(_grade, rollout)
        view = view_rollout(rollout, correct, count=self.config.reward_count)
        base = _base_reward(view, self.config.reward_mode)
        reward, self.last_base = base - self.last_base, base
        result: dict[str, Any] = {
            "rewards": torch.tensor(reward),
            "scores": float(correct > 0.5),
            "environment_feedback": "",
            "environment_images": None,
            "done": rollout.done,
            "extra_logs": {**view.to_logs(LOG), f"{LOG}overflow": 0.0},
        }
        if not rollout.done and obs is not None:
            closed = self.turn.ended_with_eos or text.endswith(IM_END)
            feedback = feedback_markup(obs.text, len(obs.images), closed)
            images = list(obs.images)
            room = self._room(states)
            need = self._tokens(feedback, images) if images and room is not None else 0
            if images and room is not None and need > room:
                # OpenRLHF would drop these images silently (utils/agent.py): refuse instead,
                # with an error the model can act on, and record the call as failed.
                feedback = feedback_markup(_overflow_text(need, room), 0, closed)
                images = []
                call = rollout.calls[-1]
                call.ok, call.error, call.n_images = False, "context overflow", 0
                result["extra_logs"] = {
                    **view_rollout(rollout, correct, count=self.config.reward_count).to_logs(LOG),
                    f"{LOG}overflow": 1.0,
                }
                logger.warning(
                    "pixelctl: %s: observation of %d tokens refused (%d left)",
                    rollout.query.qid,
                    need,
                    room,
                )
            result["environment_feedback"] = feedback
            result["environment_images"] = images or None
            result["sampling_params"] = self._next_sampling(states["sampling_params"])
        return result

    def _room(self, states: dict) -> int | None:
        """Tokens the context has left after this action (None: unknown, outside OpenRLHF)."""
        if self.turn.max_length is None or self.turn.tokenizer is None:
            return None
        used = self.turn.prompt_tokens + self.turn.completion_tokens
        return self.turn.max_length - used

    def _tokens(self, feedback: str, images: list) -> int:
        """An observation's tokens: the text (one pad per image) plus each image's visual
        tokens, which the processor takes from the image size (already fitted to the bounds)."""
        from pixelctl.executor import visual_tokens

        tok = self.turn.tokenizer
        inner = getattr(tok, "tokenizer", tok)
        n = len(inner(feedback, add_special_tokens=False)["input_ids"]) - len(images)
        size = getattr(getattr(tok, "image_processor", None), "size", None) or {}
        lo, hi = size.get("shortest_edge"), size.get("longest_edge")
        for im in images:
            n += visual_tokens(im.height, im.width, lo, hi)
        return n

    def _next_sampling(self, params: Any) -> Any:
        after = self.config.temperature_after_tool
        if after is None or not getattr(params, "temperature", 0.0):
            return None  # keep the engine's sampling (greedy stays greedy)
        params = copy.deepcopy(params)
        params.temperature = after
        return params


def _overflow_text(need: int, room: int) -> str:
    return (
        f"\nExecution error:\nThe result needs {need} tokens but only {room} remain in the "
        "context. Answer with what you have seen."
    )


def feedback_markup(text: str, n_images: int, action_closed: bool) -> str:
    """An observation as the next user turn, then the assistant header (Qwen chat markup)."""
    close = "" if action_closed else IM_END
    user = turn_header("user") + text + IMAGE_MARKUP * n_images + IM_END
    return f"{close}\n{user}\n{turn_header('assistant')}"


def _grade(rollout: Rollout) -> float:
    """Training-mode grade of the rollout as it stands (a truncated one ends without `done`)."""
    from pixelctl.grading import paper_compat_score

    response = "\n".join(rollout.turns)
    return paper_compat_score(response, rollout.query.answer, training=True)


def _base_reward(view: RolloutView, mode: str) -> float:
    """The accuracy term of the recipe's reward (alpha = beta = 0: no group terms here)."""
    return shaped_rewards([view], mode=mode, alpha=0.0, beta=0.0)[0]  # type: ignore[arg-type]


_CONFIG: PluginConfig | None = None


def _config() -> PluginConfig:
    global _CONFIG
    if _CONFIG is None:
        _CONFIG = PluginConfig.from_env()
    return _CONFIG


class AgentExecutor(MultiTurnAgentExecutor):
    """What OpenRLHF builds from this file (no arguments)."""

    def __init__(self, config: PluginConfig | None = None) -> None:
        super().__init__(AgentInstance)
        global _CONFIG
        self.config = _CONFIG = config or PluginConfig.from_env()

    async def execute(
        self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None
    ):
        """One sample. Never raises: a sample that fails (a first prompt over the budget, an
        unreadable image, a grading error) comes back as a finished zero-reward sample with
        `pixelctl/failed` = 1, logged with its qid; an exception here would end the job
        (`generate_responses` gathers without `return_exceptions`, `ray.get` re-raises)."""
        # OpenRLHF hands the n samples of a prompt ONE SamplingParams and its executor writes
        # `max_tokens` into it each turn; the first-prompt check reads it back. Work on a copy,
        # with the per-turn cap as the first turn's budget (max_len − max_new_tokens).
        sampling_params = copy.deepcopy(sampling_params)
        if self.config.max_new_tokens:
            sampling_params.max_tokens = self.config.max_new_tokens
        try:
            query = parse_label(label)
            paths = list(images or [])
            fitted = (
                await asyncio.to_thread(_fit_inputs, paths, query.is_video, self.config.settings)
                if paths
                else None
            )
            turn = _Turn(max_length=max_length, tokenizer=hf_tokenizer)
            _TURN.set(turn)
            engine = _CappedEngine(
                llm_engine, self.config.max_new_tokens, _eos_ids(hf_tokenizer), turn
            )
            result = await self._execute(
                prompt, label, sampling_params, max_length, hf_tokenizer, engine, fitted
            )
        except Exception as exc:
            return failed_response(prompt, label, hf_tokenizer, exc)
        result["images"] = images  # keep the paths in the Experience, not decoded pixels
        # every sample carries the same keys (a context already full never reaches step())
        defaults = {f"{LOG}{k}": 0.0 for k in FAILED_KEYS}
        result["extra_logs"] = {**defaults, **result["extra_logs"], f"{LOG}failed": 0.0}
        return result

    async def _execute(self, prompt, label, sampling_params, max_length, tokenizer, engine, images):
        return await super().execute(
            prompt, label, sampling_params, max_length, tokenizer, engine, images=images
        )


FAILED_KEYS = (*RolloutView.LOG_FIELDS, "overflow")  # every sample carries the same keys


def failed_response(prompt: str, label: str, tokenizer: Any, exc: BaseException) -> dict:
    """A finished, zero-reward sample standing for one that failed. Its only action token is
    `<|im_end|>` after an empty assistant header, so no pixel tensors are needed; the replay
    hook zeroes its advantage (`pixelctl/failed`), so it teaches nothing and keeps the count."""
    try:
        qid = parse_label(label).qid
    except ValueError:
        qid = "?"
    reason = f"{type(exc).__name__}: {exc}"
    logger.warning("pixelctl: sample %s failed and scores 0: %s", qid, reason[:500])
    inner = getattr(tokenizer, "tokenizer", tokenizer)
    ids = inner(turn_header("assistant"), add_special_tokens=False)["input_ids"]
    end = inner.convert_tokens_to_ids(IM_END)
    logs = {f"{LOG}{k}": 0.0 for k in FAILED_KEYS}
    return {
        "prompt": prompt,
        "label": label,
        "images": None,
        "mm_train_inputs": None,
        "reward": 0.0,
        "scores": 0.0,
        "observation_tokens": [*ids, end],
        "action_ranges": [(len(ids), len(ids) + 1)],
        "rollout_log_probs": None,
        "truncated": False,
        "extra_logs": {**logs, f"{LOG}failed": 1.0},
    }


def _eos_ids(tokenizer: Any) -> set[int]:
    ids = {getattr(tokenizer, "eos_token_id", None)}
    convert = getattr(getattr(tokenizer, "tokenizer", tokenizer), "convert_tokens_to_ids", None)
    if convert is not None:
        ids.add(convert(IM_END))
    return {i for i in ids if isinstance(i, int)}
