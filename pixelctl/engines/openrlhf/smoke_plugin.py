"""The bring-up plugin of `make smoke-gpu` (`launch.rl.smoke_plugin: true`): pixelctl's agent,
with turn 1 of every sample replaced by one scripted crop, so a random tiny model still drives
the multi-turn image path (crop → a second image in turn 2 → answer).

Per sample it logs, beside the agent's `pixelctl/*` keys:
- `pixelctl/smoke_prompt_match`: 1 when vLLM's prompt length for turn 1 (its processed prompt,
  image placeholders expanded) equals the HF processor's (what the trainer trains on);
- `pixelctl/smoke_turn2_images`: the images vLLM received with turn 2 (2: prompt + crop).
`tests/helpers/smoke_check.py` reads them from the step logs. OpenRLHF loads this file by path,
like plugin.py, so it imports the agent from the installed pixelctl.
"""

from dataclasses import dataclass, field
from typing import Any

from pixelctl.engines.openrlhf import plugin
from pixelctl.engines.openrlhf.plugin import LOG, AgentInstance, PluginConfig  # noqa: F401
from pixelctl.executor import CROP_TOOL
from pixelctl.models.qwen import IM_END
from pixelctl.prompt import format_tool_call

SCRIPTED_CROP = "Let me zoom in." + format_tool_call(
    CROP_TOOL, {"bbox_2d": [0.25, 0.25, 0.75, 0.75], "target_image": 1}
)


@dataclass
class _Out:
    token_ids: list[int]
    text: str
    finish_reason: str = "stop"
    logprobs: Any = None


@dataclass
class _Request:
    outputs: list[_Out]
    prompt_token_ids: list[int] = field(default_factory=list)


class _ScriptedFirstTurn:
    """The engine, except that turn 1 answers with SCRIPTED_CROP (vLLM still runs it, so the
    prompt-length comparison is vLLM's own)."""

    def __init__(self, engine: Any, tokenizer: Any, stats: dict) -> None:
        self.engine, self.tokenizer, self.stats, self.turn = engine, tokenizer, stats, 0

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.turn += 1
        out = await self.engine.generate(
            prompt_token_ids, sampling_params, multi_modal_data=multi_modal_data
        )
        images = len((multi_modal_data or {}).get("image", []))
        if self.turn == 1:
            vllm_len = len(getattr(out, "prompt_token_ids", None) or [])
            self.stats["smoke_prompt_match"] = float(vllm_len == len(prompt_token_ids))
            inner = getattr(self.tokenizer, "tokenizer", self.tokenizer)
            ids = inner(SCRIPTED_CROP, add_special_tokens=False)["input_ids"]
            ids.append(inner.convert_tokens_to_ids(IM_END))
            return _Request([_Out(ids, SCRIPTED_CROP)], list(prompt_token_ids))
        if self.turn == 2:
            self.stats["smoke_turn2_images"] = float(images)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


class AgentExecutor(plugin.AgentExecutor):
    """pixelctl's AgentExecutor with a scripted first turn (bring-up only)."""

    async def _execute(self, prompt, label, sampling_params, max_length, tokenizer, engine, images):
        stats = {"smoke_prompt_match": 0.0, "smoke_turn2_images": 0.0}
        engine.engine = _ScriptedFirstTurn(engine.engine, tokenizer, stats)
        result = await super()._execute(
            prompt, label, sampling_params, max_length, tokenizer, engine, images
        )
        result["extra_logs"] = {**result["extra_logs"], **{LOG + k: v for k, v in stats.items()}}
        return result
