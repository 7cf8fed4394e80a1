"""The recipe schema: one file holds every stage, so the tool format and pixel limits can't drift.

Every model forbids unknown keys; every field has a type, a default and a description. Defaults
are the paper's 7B run (docs/method.md) unless a field says otherwise, so a recipe only writes what it
changes. Cross-field checks live on the section that owns them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pixelctl.executor.settings import EVAL_BOUNDS, TRAIN_BOUNDS
from pixelctl.models.qwen import PIXEL_UNIT


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ----------------------------------------------------------------------------- shared blocks
class ModelConfig(Section):
    name_or_path: str = Field(
        "Qwen/Qwen2.5-VL-7B-Instruct",
        description="Local folder, hub id (GPU clusters with a model cache), or "
        "'builtin:tiny-qwen2.5-vl' (built offline by pixelctl).",
    )
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    attn_implementation: Literal["flash_attention_2", "sdpa", "eager"] = "flash_attention_2"
    freeze_vision: bool = Field(True, description="Freeze the vision tower (SFT and RL).")


class PromptConfig(Section):
    mode: Literal["vcot", "notool"] = Field(
        "vcot", description="'vcot': tools + the pixel-space guideline; 'notool': the baseline."
    )


class PixelBoundsConfig(Section):
    """Pixel bounds of one preset, in pixels (multiples of 28*28 in the paper's settings)."""

    image_min_pixels: int = Field(gt=0)
    image_max_pixels: int = Field(gt=0)
    crop_min_pixels: int = Field(gt=0)
    crop_max_pixels: int = Field(gt=0)
    frame_min_pixels: int = Field(gt=0)
    frame_max_pixels: int = Field(gt=0)
    video_min_pixels: int = Field(
        4 * PIXEL_UNIT, gt=0, description="Input video frames (reference: 4·28²)."
    )
    video_max_pixels: int = Field(
        512 * PIXEL_UNIT, gt=0, description="Input video frames (512·28²)."
    )
    processor_min_pixels: int | None = Field(
        None, gt=0, description="The model processor's own clamp (eval: 401,408); null = model's."
    )
    processor_max_pixels: int | None = Field(
        None, gt=0, description="The model processor's own clamp (eval: 4,014,080)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> PixelBoundsConfig:
        for kind in ("image", "crop", "frame", "video"):
            lo, hi = getattr(self, f"{kind}_min_pixels"), getattr(self, f"{kind}_max_pixels")
            if lo > hi:
                raise ValueError(
                    f"{kind}_min_pixels ({lo}) exceeds {kind}_max_pixels ({hi}); "
                    "swap them or lower the minimum"
                )
        return self


def _train_bounds() -> PixelBoundsConfig:
    """The executor's train preset (docs/method.md §2): one source for the numbers."""
    return PixelBoundsConfig(**asdict(TRAIN_BOUNDS))


def _eval_bounds() -> PixelBoundsConfig:
    """The executor's eval preset, plus the reference's processor clamp (401,408…4,014,080)."""
    return PixelBoundsConfig(
        **asdict(EVAL_BOUNDS),
        processor_min_pixels=512 * PIXEL_UNIT,
        processor_max_pixels=5120 * PIXEL_UNIT,
    )


class BoundsPresets(Section):
    train: PixelBoundsConfig = Field(default_factory=_train_bounds)
    eval: PixelBoundsConfig = Field(default_factory=_eval_bounds)


class ExecutorConfig(Section):
    box_mode: Literal["compat", "strict"] = Field(
        "compat",
        description="'compat' reproduces the reference (boxes normalized only if all values < 1); "
        "'strict' reads [0,1] boxes as normalized and rejects invalid ones.",
    )
    pad: float = Field(0.1, ge=0.0, le=0.5, description="Padding added on every side of a box.")
    min_crop_side: int = Field(28, ge=1, description="A crop must exceed this many pixels a side.")
    max_operations: int = Field(4, ge=0, description="Executed operations per rollout.")
    max_images: int = Field(16, ge=1, description="Images per trajectory, inputs included.")
    max_frames: int = Field(8, ge=1, description="Frames one select_frames call may return.")
    max_trajectory_tokens: int = Field(
        12 * 1024 - 200,
        ge=256,
        description="Token budget of a trajectory, checked before each call (reference: 12k − 200).",
    )
    max_input_pixels: int = Field(
        64 * 1024 * 1024, ge=1, description="Refuse larger images (decompression bombs)."
    )
    data_root: str | None = Field(None, description="Image paths must resolve inside this folder.")
    bounds: BoundsPresets = Field(default_factory=BoundsPresets)

    def settings(self, preset: Literal["train", "eval"]):  # -> pixelctl.executor.ExecutorSettings
        """The executor's own settings for one preset: the single bridge from recipe to tools."""
        from pathlib import Path

        from pixelctl.executor.settings import ExecutorSettings, PixelBounds

        b = getattr(self.bounds, preset)
        bounds = PixelBounds(
            **b.model_dump(exclude={"processor_min_pixels", "processor_max_pixels"})
        )
        return ExecutorSettings(
            box_mode=self.box_mode,
            bounds=bounds,
            pad=self.pad,
            min_crop_side=self.min_crop_side,
            max_operations=self.max_operations,
            max_images=self.max_images,
            max_frames=self.max_frames,
            max_input_pixels=self.max_input_pixels,
            data_root=Path(self.data_root) if self.data_root else None,
            max_tokens=self.max_trajectory_tokens,
        )


# ----------------------------------------------------------------------------- synth
class WriterConfig(Section):
    kind: Literal["template", "llm"] = "template"
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint for kind=llm.")
    model: str | None = None
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the key.")
    concurrency: int = Field(8, ge=1, le=512)
    max_retries: int = Field(5, ge=0, le=50)
    timeout_s: float = Field(60.0, gt=0)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    usd_per_1k_input_tokens: float = Field(0.0, ge=0.0)
    usd_per_1k_output_tokens: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _llm_needs_endpoint(self) -> WriterConfig:
        if self.kind == "llm" and not (self.base_url and self.model):
            raise ValueError("kind 'llm' needs base_url and model (e.g. http://localhost:8000/v1)")
        return self


class ProceduralSeeds(Section):
    n_train: int = Field(0, ge=0, description="Procedural scenes for training (0 = none).")
    n_eval: int = Field(0, ge=0, description="Held-out procedural scenes for evaluation.")
    canvas_min: int = Field(1024, ge=256)
    canvas_max: int = Field(2048, ge=256)
    grid: Literal[1, 3] = Field(
        3,
        description="Where the panel can be: the centre of one cell of a 3x3 grid (3), or the "
        "canvas centre (1, the demo's: docs/demo.md says why).",
    )
    detail_px: float = Field(
        6.0,
        gt=0,
        description="Height of the answer-bearing detail in the whole view as the executor fits "
        "it to the training image bounds, in px (a visual token is 28 px; 6: a fifth of one).",
    )
    clear_margin: float = Field(
        0.0,
        ge=0.0,
        lt=0.5,
        description="Keep the canvas this fraction of its side around the panel free of clutter "
        "(0: clutter may touch the frame).",
    )
    tasks: list[Literal["digit", "shape", "count", "relative", "arrow", "colour"]] = Field(
        default_factory=lambda: ["shape", "relative"],
        min_length=1,
        description="Which panel tasks the scenes draw from, uniformly (docs/seeds.md).",
    )


class SeedSource(Section):
    path: str = Field(description="A seed JSONL file (see docs/seeds.md).")
    kind: Literal["image", "web", "video"]


class TextOnlyConfig(Section):
    """Where text-only trajectories come from: the writer (`template`, the offline default) or
    rejection sampling from a model (`model`: k answers per query with the no-tool prompt, the
    graded-correct kept; docs/seeds.md)."""

    source: Literal["template", "model"] = "template"
    k: int = Field(8, ge=1, le=256, description="Answers sampled per query (source: model).")
    temperature: float = Field(1.0, gt=0.0, le=2.0, description="Sampling temperature (> 0).")
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(1024, ge=1, description="New tokens per answer.")
    grader: Literal["exact", "paper_compat"] = Field(
        "exact",
        description="'exact': eval's rule for seeds (option letter or text with options, else "
        "exact match of the final answer); 'paper_compat': the authors' matcher.",
    )
    backend: Literal["hf", "vllm", "openai"] = "hf"
    model: str | None = Field(
        None,
        description="hf/vllm: the checkpoint to sample; openai: the served model name "
        "(default: model.name_or_path, the base model, as the paper).",
    )
    base_url: str = Field("http://127.0.0.1:8000/v1", description="backend openai: the server.")
    api_key_env: str = Field("OPENAI_API_KEY", description="backend openai: the key's variable.")
    concurrency: int = Field(8, ge=1, description="backend openai: requests in flight.")
    batch_size: int = Field(8, ge=1, description="backend hf: sequences per forward pass.")
    queries_per_call: int = Field(
        16, ge=1, description="Queries sampled together (each call's answers cached at once)."
    )


class SynthConfig(Section):
    seeds: list[SeedSource] = Field(default_factory=list)
    procedural: ProceduralSeeds = Field(default_factory=ProceduralSeeds)
    n_pixel_space: int = Field(5500, ge=0, description="Pixel-space trajectories (paper: 5,500).")
    n_text_only: int = Field(2000, ge=0, description="Text-only trajectories (paper: 2,000).")
    self_correction_ratio: float = Field(
        0.3, ge=0.0, le=1.0, description="Share of pixel-space trajectories with an inserted error."
    )
    writer: WriterConfig = Field(default_factory=WriterConfig)
    text_only: TextOnlyConfig = Field(default_factory=TextOnlyConfig)
    seed: int = 0


# ----------------------------------------------------------------------------- sft
class SFTConfig(Section):
    data: list[str] = Field(default_factory=list, description="SFT record files or run dirs.")
    mask: Literal["last_two_assistant", "all_assistant", "skip_marked_errors"] = Field(
        "last_two_assistant", description="Which assistant turns are trained (reference: last two)."
    )
    lr: float = Field(1.0e-6, gt=0)
    vision_lr: float | None = Field(
        None,
        gt=0,
        description="Learning rate of the vision tower (`visual.*`: ViT and merger), on the same "
        "schedule as lr (null: lr). Needs model.freeze_vision false.",
    )
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    epochs: float = Field(1.0, gt=0)
    global_batch_size: int = Field(128, ge=1, description="Sequences per optimizer step.")
    per_device_batch_size: int = Field(1, ge=1)
    max_length: int = Field(16384, ge=128, description="Tokens per sequence (longer: truncated).")
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float = Field(1.0, gt=0)
    gradient_checkpointing: bool = True
    zero_stage: Literal[0, 1, 2, 3] = 2
    save_steps: int = Field(100, ge=1)
    logging_steps: int = Field(1, ge=1)
    max_steps: int = Field(-1, description="Stop after this many steps (-1: run all epochs).")
    seed: int = 42


# ----------------------------------------------------------------------------- rl
class RewardConfig(Section):
    mode: Literal["paper", "reference"] = "paper"
    alpha: float = Field(0.5, ge=0.0, description="Curiosity weight.")
    beta: float = Field(0.05, ge=0.0, description="Efficiency-penalty weight.")
    H: float = Field(0.3, ge=0.0, le=1.0, description="Target RaPR below which curiosity pays.")
    N: int = Field(1, ge=0, description="Operations allowed before the penalty.")
    count: Literal["attempts", "executed"] = Field(
        "attempts",
        description="What counts as pixel-space reasoning (RaPR, curiosity, penalty): "
        "'attempts' = every tool-call attempt, malformed ones included (the reference); "
        "'executed' = only well-formed calls the executor ran.",
    )


class RolloutConfig(Section):
    n_samples: int = Field(8, ge=1, description="Rollouts per prompt (the GRPO group).")
    prompts_per_round: int = Field(512, ge=1, description="Prompts per rollout round.")
    temperature: float = Field(1.0, ge=0.0)
    temperature_after_tool: float | None = Field(
        0.9, description="Temperature after a tool call (reference: 0.9; null: keep temperature)."
    )
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(2048, ge=1, description="New tokens per turn.")
    max_prompt_tokens: int = Field(2048, ge=1)
    micro_batch_size: int = Field(1, ge=1)


class OptimConfig(Section):
    batch_size: int = Field(256, ge=1, description="Trajectories per optimizer step.")
    micro_batch_size: int = Field(4, ge=1, description="Trajectories per GPU per forward.")
    lr: float = Field(1.0e-6, gt=0)
    lr_scheduler: Literal["cosine", "constant"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    min_lr_ratio: float = Field(0.5, ge=0.0, le=1.0)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float = Field(1.0, gt=0)
    clip_low: float = Field(0.2, ge=0.0)
    clip_high: float = Field(0.35, ge=0.0)
    kl_coef: float = Field(0.0, ge=0.0, description="0 = no reference model.")
    entropy_coef: float = Field(0.0, ge=0.0)
    std_norm: bool = Field(False, description="Divide advantages by the group std (std GRPO).")
    episodes: int = Field(3, ge=1, description="Passes over the prompt data.")
    zero_stage: Literal[0, 1, 2, 3] = 3
    adam_offload: bool = Field(
        False, description="Adam states in host memory (the authors' single-node script)."
    )
    gradient_checkpointing: bool = True


class ReplayConfig(Section):
    zero_signal_filter: bool = Field(True, description="Drop groups with all-equal rewards.")
    ssr: bool = Field(True, description="Selective Sample Replay (VL-Rethinker).")
    capacity: int = Field(4096, ge=1, description="Replay buffer size, in trajectories.")
    epsilon: float = Field(0.01, ge=0.0, description="Added to |A| when drawing from the buffer.")
    max_age_rounds: int | None = Field(
        None,
        ge=1,
        description="openrlhf engine: evict buffered samples older than this many rounds (their "
        "log-probs and advantages are from their own round's policy); null = no age cap.",
    )
    max_memory_gb: float | None = Field(
        None, gt=0, description="openrlhf engine: cap the buffer's pixel tensors at this size."
    )


class RLConfig(Section):
    engine: Literal["openrlhf", "local"] = "openrlhf"
    data: list[str] = Field(default_factory=list, description="RL prompt files (jsonl/parquet).")
    init_from: str | None = Field(None, description="SFT run dir or checkpoint to start from.")
    expected_prompts: int = Field(
        15000, ge=1, description="Prompt count used for the derived plan before data is read."
    )
    reward: RewardConfig = Field(default_factory=RewardConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    save_every_rounds: int = Field(3, ge=1)
    max_rounds: int = Field(-1, description="Stop after this many rounds (-1: all episodes).")
    seed: int = 42

    @model_validator(mode="after")
    def _batches_fit(self) -> RLConfig:
        per_round = self.rollout.prompts_per_round * self.rollout.n_samples
        if per_round % self.optim.batch_size:
            raise ValueError(
                f"rollout.prompts_per_round × rollout.n_samples = {per_round} trajectories is not "
                f"a multiple of optim.batch_size = {self.optim.batch_size}; "
                "pick sizes that divide evenly"
            )
        if self.optim.clip_high < self.optim.clip_low:
            raise ValueError("optim.clip_high is below optim.clip_low (paper: 0.2 low, 0.35 high)")
        return self


# ----------------------------------------------------------------------------- eval
class BenchmarkSource(Section):
    name: Literal["vstar", "tallyqa", "infovqa", "mvbench", "procedural"]
    path: str = Field(description="Data file or folder for this benchmark.")
    layout: Literal["authors", "official"] = "authors"
    limit: int | None = Field(None, ge=1, description="Evaluate the first N items only.")


class OpenAIBackendConfig(Section):
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "pixel-reasoner"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(8, ge=1)


class ReleasedEval(Section):
    """The authors' released checkpoint on their eval sets, fetched by `pixelctl eval --fetch`."""

    checkpoint: Literal["rl", "warmstart"] = Field(
        "rl",
        description="'rl': TIGER-Lab/PixelReasoner-RL-v1 (paper: Pixel Reasoner); 'warmstart': "
        "TIGER-Lab/PixelReasoner-WarmStart (paper: SFT only).",
    )
    benchmarks: list[Literal["vstar", "tallyqa", "infovqa", "mvbench"]] = Field(
        default_factory=lambda: ["vstar", "tallyqa", "infovqa", "mvbench"],
        description="Which of the authors' eval sets (JasperHaozhe/<Name>-EvalData-PixelReasoner).",
    )
    limit: int | None = Field(None, ge=1, description="The first N items of each (a smoke test).")
    cache_dir: str | None = Field(
        None, description="Where --fetch puts model and data (default $PIXELCTL_CACHE/released)."
    )


class TallyQAEval(Section):
    complex_rule: Literal["issimple", "amt"] = Field(
        "issimple",
        description="Official layout: which TallyQA questions are complex: 'issimple' "
        "(issimple == false, the dataset's README) or 'amt' (data_source == amt, TallyQA's own "
        "scoring code and the paper's Test-Complex); docs/eval.md.",
    )


class EvalConfig(Section):
    benchmarks: list[BenchmarkSource] = Field(default_factory=list)
    checkpoint: str | None = Field(None, description="Run dir or model folder to evaluate.")
    released: ReleasedEval | None = Field(
        None, description="Evaluate a released checkpoint on the authors' data (sets both above)."
    )
    backend: Literal["hf", "vllm", "openai"] = "vllm"
    openai: OpenAIBackendConfig = Field(default_factory=OpenAIBackendConfig)
    workers: int = Field(1, ge=1, description="Data-parallel workers (Ray actors).")
    max_new_tokens: int = Field(2048, ge=1, description="New tokens per turn.")
    seed: int = 0
    tallyqa: TallyQAEval = Field(default_factory=TallyQAEval)

    @model_validator(mode="after")
    def _released_is_whole(self) -> EvalConfig:
        if self.released is not None and (self.benchmarks or self.checkpoint):
            raise ValueError(
                "eval.released chooses the checkpoint and the benchmarks; remove eval.checkpoint "
                "and eval.benchmarks (select with eval.released.checkpoint / .benchmarks / .limit)"
            )
        return self

    def sources(self) -> list[BenchmarkSource]:
        """The benchmarks to run: `benchmarks`, or the released eval sets in the cache."""
        if self.released is None:
            return list(self.benchmarks)
        from pixelctl.hub import EVAL_DATA, cache_dir, local_dir

        cache = cache_dir(self.released.cache_dir)
        return [
            BenchmarkSource(
                name=n, path=str(local_dir(cache, EVAL_DATA[n])), limit=self.released.limit
            )
            for n in self.released.benchmarks
        ]

    def checkpoint_path(self) -> str | None:
        """`checkpoint`, or the released model's folder in the cache."""
        if self.released is None:
            return self.checkpoint
        from pixelctl.hub import MODELS, cache_dir, local_dir

        return str(local_dir(cache_dir(self.released.cache_dir), MODELS[self.released.checkpoint]))


# ----------------------------------------------------------------------------- launch
class ClusterLayout(Section):
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(8, ge=0)

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


class RLLaunch(ClusterLayout):
    nodes: int = 4
    vllm_engines: int = Field(32, ge=0)
    vllm_tensor_parallel: int = Field(1, ge=1)
    vllm_gpu_memory_utilization: float = Field(0.6, gt=0.0, le=1.0)
    colocate: bool = Field(True, description="Actor and vLLM engines share GPUs (sleep mode).")
    ray_address: str = Field("http://127.0.0.1:8265", description="Ray dashboard/job address.")
    host_memory_gb: float | None = Field(
        None,
        gt=0,
        description="Host RAM of the node running OpenRLHF's PPOTrainer (validate warns).",
    )
    smoke_plugin: bool = Field(
        False, description="Bring-up only: force one scripted crop on turn 1 (make smoke-gpu)."
    )


class LaunchConfig(Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    sft: ClusterLayout = Field(default_factory=ClusterLayout)
    rl: RLLaunch = Field(default_factory=RLLaunch)
    eval: ClusterLayout = Field(default_factory=ClusterLayout)
    runs_root: str = Field("runs", description="Where run directories are created.")


# ----------------------------------------------------------------------------- logging
class WandbConfig(Section):
    """Weights & Biases, opt-in. The key is read from $WANDB_API_KEY, never from the recipe."""

    project: str = Field(description="W&B project.")
    entity: str | None = Field(None, description="W&B entity (user or team; OpenRLHF: org).")
    group: str | None = Field(None, description="W&B run group (e.g. one per experiment).")


class LoggingConfig(Section):
    """Experiment tracking for every stage, beside metrics.jsonl (docs/architecture.md)."""

    tensorboard: bool = Field(True, description="Event files in each run's tensorboard/.")
    wandb: WandbConfig | None = Field(None, description="Also log to W&B (needs $WANDB_API_KEY).")


# ----------------------------------------------------------------------------- recipe
STAGES = ("synth", "sft", "rl", "eval")


class Recipe(Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    rl: RLConfig = Field(default_factory=RLConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    launch: LaunchConfig = Field(default_factory=LaunchConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    max_reject_fraction: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Every stage refuses to start when more of its records are rejected "
        "(listed in the run's rejects.jsonl).",
    )

    @model_validator(mode="after")
    def _vision_lr_needs_a_trained_tower(self) -> Recipe:
        if self.sft.vision_lr is not None and self.model.freeze_vision:
            raise ValueError(
                "sft.vision_lr is set but model.freeze_vision is true, so the vision tower is "
                "not trained; set model.freeze_vision: false or remove sft.vision_lr"
            )
        return self
