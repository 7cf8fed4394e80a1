"""Contract test: our plugin driven by OpenRLHF 0.11.2's real `MultiTurnAgentExecutor`.

The vLLM engine is scripted (it answers each turn with fixed text, returning token ids the way
vLLM does: the `<|im_end|>` that stopped generation is in the ids, not in the text); the
tokenizer/processor is the tiny Qwen2.5-VL's, loaded as OpenRLHF loads it. We check what
OpenRLHF trains on: the observation tokens, the action ranges (feedback masked), the images
handed to vLLM and to the trainer, the reward and the scores.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from pixelctl.agent import Query
from pixelctl.config import load_recipe
from pixelctl.engines.openrlhf import plugin
from pixelctl.engines.openrlhf.data import label_json, render_prompt
from pixelctl.engines.openrlhf.job import env_vars
from pixelctl.executor import Session

ROOT = Path(__file__).resolve().parent.parent
CROP_CALL = (
    "Let me zoom in.<tool_call>\n"
    '{"name": "crop_image_normalized", "arguments": {"bbox_2d": [0.25, 0.25, 0.75, 0.75], '
    '"target_image": 1}}\n</tool_call>'
)
BAD_CALL = (
    "Zoom.<tool_call>\n"
    '{"name": "crop_image_normalized", "arguments": {"bbox_2d": [0.2, 0.2, 0.6, 0.6], '
    '"target_image": 3}}\n</tool_call>'
)

pytestmark = pytest.mark.slow  # builds the tiny model once per session


@dataclass
class SP:
    """The SamplingParams fields OpenRLHF's executor touches."""

    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int | None = 64
    logprobs: int | None = None


@dataclass
class _Out:
    token_ids: list[int]
    text: str
    finish_reason: str = "stop"
    logprobs: None = None


@dataclass
class _Request:
    outputs: list[_Out]


@dataclass
class FakeEngine:
    """A scripted vLLM engine that records every request."""

    tokenizer: object
    turns: list[str]
    calls: list[dict] = field(default_factory=list)

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.calls.append(
            {
                "prompt": list(prompt_token_ids),
                "params": copy.deepcopy(sampling_params),
                "images": list((multi_modal_data or {}).get("image", [])),
            }
        )
        text = self.turns.pop(0)
        inner = self.tokenizer.tokenizer
        ids = inner(text, add_special_tokens=False)["input_ids"]
        return _Request([_Out([*ids, inner.convert_tokens_to_ids("<|im_end|>")], text)])


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from openrlhf.utils.utils import get_tokenizer

    return get_tokenizer(str(tiny_model_dir), None, "left")  # what OpenRLHF hands the executor


@pytest.fixture()
def image(tmp_path) -> Path:
    img = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(img).rectangle([150, 110, 250, 190], fill="red")
    path = tmp_path / "scene.png"
    img.save(path)
    return path


def config(reward_mode: str = "paper") -> plugin.PluginConfig:
    recipe = load_recipe(ROOT / "recipes/tiny_cpu.yaml").recipe
    env = env_vars(recipe)
    env[plugin.REWARD_ENV] = json.dumps({**json.loads(env[plugin.REWARD_ENV]), "mode": reward_mode})
    env[plugin.ROLLOUT_ENV] = json.dumps({"temperature_after_tool": 0.9, "max_new_tokens": 32})
    return plugin.PluginConfig.from_env(env)


def run(cfg, processor, image: Path, turns: list[str], answer: str = "7"):
    query = Query(qid="t-1", question="How many?", images=(str(image),), answer=answer)
    engine = FakeEngine(processor, list(turns))
    executor = plugin.AgentExecutor(cfg)
    result = asyncio.run(
        executor.execute(
            render_prompt(query),
            label_json(query),
            SP(),
            max_length=4096,
            hf_tokenizer=processor,
            llm_engine=engine,
            images=[str(image)],
        )
    )
    return result, engine


def tokens(processor, text: str, images=None) -> list[int]:
    if images:
        out = processor(text=[text], images=images, add_special_tokens=False, return_tensors="pt")
        return out["input_ids"][0].tolist()
    return processor.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_crop_then_answer(processor, image):
    cfg = config()
    result, engine = run(cfg, processor, image, [CROP_CALL, r"It is \boxed{7}"])
    fitted = Session(images=[str(image)], settings=cfg.settings).input_image(1)
    crop = engine.calls[1]["images"][1]
    im_end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")

    prompt = tokens(processor, render_prompt(Query("t-1", "How many?", (str(image),))), [fitted])
    action1 = [*tokens(processor, CROP_CALL), im_end]
    feedback_text = (
        f"\n<|im_start|>user\n\nHere is the cropped image (Image Size: {crop.width}x{crop.height}):"
        "<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n"
    )
    feedback = tokens(processor, feedback_text, [crop])
    action2 = [*tokens(processor, r"It is \boxed{7}"), im_end]

    assert result["observation_tokens"] == prompt + action1 + feedback + action2
    a, f = len(prompt) + len(action1), len(feedback)
    assert result["action_ranges"] == [(len(prompt), a), (a + f, a + f + len(action2))]
    # the images: the prompt image fitted to the train bounds, then the crop, to vLLM and trainer
    assert [im.size for im in engine.calls[0]["images"]] == [fitted.size]
    assert engine.calls[1]["images"][0].size == fitted.size
    assert crop.width * crop.height <= cfg.settings.bounds.crop_max_pixels
    assert engine.calls[1]["prompt"] == prompt + action1 + feedback
    assert result["mm_train_inputs"]["image_grid_thw"].shape[0] == 2
    assert result["images"] == [str(image)]  # paths in the Experience, not pixels
    # sampling: the per-turn cap, and the reference's temperature after a tool call
    assert [c["params"].max_tokens for c in engine.calls] == [32, 32]
    assert [c["params"].temperature for c in engine.calls] == [1.0, 0.9]
    assert result["reward"] == 1.0 and result["scores"] == 1.0
    logs = result["extra_logs"]
    assert logs["pixelctl/correct"] == 1.0 and logs["pixelctl/n_calls"] == 1.0
    assert logs["pixelctl/final_error"] == 0.0 and logs["pixelctl/n_operations"] == 1.0


def test_failed_call_returns_error_text_without_images(processor, image):
    result, engine = run(config("reference"), processor, image, [BAD_CALL, r"\boxed{7}"])
    assert len(engine.calls[1]["images"]) == 1  # no image came back
    decoded = processor.tokenizer.decode(engine.calls[1]["prompt"])
    assert "\n<|im_start|>user\n\nExecution error:\n" in decoded
    assert decoded.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert decoded.count("<|image_pad|>") == engine.calls[0]["prompt"].count(
        processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    )
    # reference mode: a correct answer after an unfixed failed operation scores 0
    assert result["extra_logs"]["pixelctl/final_error"] == 1.0
    assert result["reward"] == 0.0 and result["scores"] == 1.0


@pytest.mark.parametrize(("mode", "reward"), [("paper", 0.0), ("reference", -1.0)])
def test_unparsable_answer(processor, image, mode, reward):
    result, engine = run(config(mode), processor, image, ["I cannot tell."])
    assert len(engine.calls) == 1 and len(result["action_ranges"]) == 1
    assert result["reward"] == reward and result["scores"] == 0.0
    assert result["extra_logs"]["pixelctl/correct"] == -1.0


def test_missing_runtime_env_is_an_error_naming_the_variables():
    with pytest.raises(RuntimeError, match=r"PIXELCTL_EXECUTOR_JSON.*not set on this Ray worker"):
        plugin.PluginConfig.from_env({})


def test_loads_standalone_by_path_as_openrlhf_does(monkeypatch):
    from openrlhf.utils.agent import AgentExecutorBase

    recipe = load_recipe(ROOT / "recipes/tiny_cpu.yaml").recipe
    for key, value in env_vars(recipe).items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location("agent_module", plugin.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    executor = module.AgentExecutor()
    assert isinstance(executor, AgentExecutorBase)
    assert executor.config.settings.bounds.crop_max_pixels == 50176


@dataclass
class StatefulEngine(FakeEngine):
    """Answers by conversation state, so concurrent samples can share one engine (as in vLLM)."""

    def __post_init__(self) -> None:
        self.script = list(self.turns)

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        await asyncio.sleep(0)  # interleave the samples
        done = self.tokenizer.tokenizer.decode(prompt_token_ids).count("<|im_start|>assistant")
        self.turns = [self.script[done - 1]]
        return await super().generate(prompt_token_ids, sampling_params, multi_modal_data)


def test_concurrent_samples_keep_their_own_state(processor, image):
    """OpenRLHF gathers the n samples of a prompt on one engine: nothing may leak between them."""
    cfg = config()
    query = Query(qid="t-1", question="How many?", images=(str(image),), answer="7")
    engine = StatefulEngine(processor, [CROP_CALL, r"It is \boxed{7}"])
    executor = plugin.AgentExecutor(cfg)

    async def gather():
        return await asyncio.gather(
            *(
                executor.execute(
                    render_prompt(query),
                    label_json(query),
                    SP(),
                    max_length=4096,
                    hf_tokenizer=processor,
                    llm_engine=engine,
                    images=[str(image)],
                )
                for _ in range(4)
            )
        )

    results = asyncio.run(gather())
    assert len(engine.calls) == 8
    assert all(r["observation_tokens"] == results[0]["observation_tokens"] for r in results)
    assert [r["reward"] for r in results] == [1.0] * 4
    assert [r["extra_logs"]["pixelctl/n_calls"] for r in results] == [1.0] * 4


def test_video_frames_go_in_as_images_and_selected_frames_come_back(processor, tmp_path):
    frames = []
    for i in range(4):
        path = tmp_path / f"f{i}.png"
        Image.new("RGB", (320, 240), (60 * i, 0, 0)).save(path)
        frames.append(str(path))
    query = Query(qid="v-1", question="What?", images=tuple(frames), is_video=True, answer="B")
    call = (
        '<tool_call>\n{"name": "select_frames", "arguments": {"target_frames": [2, 3]}}\n'
        "</tool_call>"
    )
    engine = FakeEngine(processor, [call, r"\boxed{B}"])
    result = asyncio.run(
        plugin.AgentExecutor(config()).execute(
            render_prompt(query),
            label_json(query),
            SP(),
            max_length=8192,
            hf_tokenizer=processor,
            llm_engine=engine,
            images=frames,
        )
    )
    assert len(engine.calls[0]["images"]) == 4  # the video's frames, one image each
    assert len(engine.calls[1]["images"]) == 6  # plus the two selected frames
    decoded = processor.tokenizer.decode(engine.calls[1]["prompt"])
    assert "\n<|im_start|>user\n\nHere are the selected frames (Frame Size: " in decoded
    assert result["reward"] == 1.0 and result["extra_logs"]["pixelctl/is_video"] == 1.0
    assert result["mm_train_inputs"]["image_grid_thw"].shape[0] == 6


# ---------------------------------------------------------------------------- at the real budget
def paper_budget() -> tuple[int, int]:
    """The paper recipe's context and per-turn cap, as the flags render them."""
    from pixelctl.engines.openrlhf.flags import max_len

    recipe = load_recipe(ROOT / "recipes/7b_a800.yaml").recipe
    return max_len(recipe), recipe.rl.rollout.max_new_tokens


def test_shared_sampling_params_at_the_paper_budget(processor, image):
    """OpenRLHF hands the n samples of a prompt ONE SamplingParams; its executor writes each
    turn's budget into it and reads it back for the first-prompt check. A sample finishing a
    long turn used to shrink the next sample's first-prompt allowance."""
    length, cap = paper_budget()
    assert (length, cap) == (15560, 2048)
    cfg = config()
    query = Query(qid="t-1", question="How many?", images=(str(image),), answer="7")
    shared = SP(max_tokens=cap)
    shared.max_tokens = 10  # what another sample's last turn left in the shared object
    engine = FakeEngine(processor, [CROP_CALL, r"\boxed{7}"])
    result = asyncio.run(
        plugin.AgentExecutor(cfg).execute(
            render_prompt(query), label_json(query), shared, max_length=length,
            hf_tokenizer=processor, llm_engine=engine, images=[str(image)],
        )
    )  # fmt: skip
    assert result["extra_logs"]["pixelctl/failed"] == 0.0 and result["reward"] == 1.0
    assert shared.max_tokens == 10  # ours was a copy
    assert [c["params"].max_tokens for c in engine.calls] == [32, 32]  # the per-turn cap


@pytest.mark.parametrize("case", ["too_long", "unreadable", "grading"])
def test_a_failing_sample_is_a_finished_zero_reward_sample(processor, image, tmp_path, case,
                                                           monkeypatch):  # fmt: skip
    cfg = config()
    images = [str(image)]
    length = 4096
    if case == "too_long":
        length = 40  # the prompt alone is longer: OpenRLHF's executor raises ValueError
    if case == "unreadable":
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"not a png")
        images = [str(bad)]
    if case == "grading":
        monkeypatch.setattr(plugin, "_grade", lambda rollout: 1 / 0)
    query = Query(qid="t-9", question="How many?", images=tuple(images), answer="7")
    engine = FakeEngine(processor, [r"\boxed{7}"])
    result = asyncio.run(
        plugin.AgentExecutor(cfg).execute(
            render_prompt(query), label_json(query), SP(), max_length=length,
            hf_tokenizer=processor, llm_engine=engine, images=images,
        )
    )  # fmt: skip
    assert result["reward"] == 0.0 and result["scores"] == 0.0
    assert result["extra_logs"]["pixelctl/failed"] == 1.0
    assert result["mm_train_inputs"] is None and result["images"] is None
    im_end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    (start, end) = result["action_ranges"][0]
    assert end - start == 1 and result["observation_tokens"][start] == im_end


def test_an_observation_that_would_not_fit_is_refused_with_an_error(processor, image):
    """OpenRLHF drops the images of feedback over max_length and strips their pads while our
    rollout would count them delivered: the plugin refuses such an observation instead."""
    cfg = config()
    query = Query(qid="t-1", question="How many?", images=(str(image),), answer="7")
    ok, _ = run(cfg, processor, image, [CROP_CALL, r"\boxed{7}"])
    # room for the prompt and the call, not for the crop's visual tokens
    crop_turn = (
        len(ok["observation_tokens"]) - ok["action_ranges"][1][1] + ok["action_ranges"][1][0]
    )
    length = ok["action_ranges"][0][1] + 20
    assert length < crop_turn
    engine = FakeEngine(processor, [CROP_CALL, r"\boxed{7}"])
    result = asyncio.run(
        plugin.AgentExecutor(cfg).execute(
            render_prompt(query), label_json(query), SP(), max_length=length,
            hf_tokenizer=processor, llm_engine=engine, images=[str(image)],
        )
    )  # fmt: skip
    assert result["extra_logs"]["pixelctl/overflow"] == 1.0
    decoded = processor.tokenizer.decode(result["observation_tokens"])
    assert "Execution error:\nThe result needs" in decoded
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    prompt_pads = ok["observation_tokens"][: ok["action_ranges"][0][0]].count(pad)
    assert result["observation_tokens"].count(pad) == prompt_pads  # no crop pads sent
    assert result["mm_train_inputs"]["image_grid_thw"].shape[0] == 1
