"""Experiment tracking beside metrics.jsonl: TensorBoard in every run directory, W&B on request.

One `logging` section of the recipe serves every stage:
- TensorBoard (`logging.tensorboard`, on by default): event files in `<run>/tensorboard/`. The
  local RL engine and eval write through `Tracker` (TensorBoard's own event writer: no torch,
  no TensorFlow), SFT through TRL's `report_to` pointed at the same folder, OpenRLHF through its
  `--logger.tensorboard_dir`.
- Weights & Biases (`logging.wandb: {project, entity, group}`, opt-in). The key is read from
  $WANDB_API_KEY, by wandb itself, and passes through no pixelctl file: not the recipe,
  config.yaml, meta.json, plan.txt, command.sh, the dry run, the job's submit.sh or
  runtime_env.json, nor the logs. OpenRLHF 0.11.2 turns W&B on only when `--logger.wandb.key`
  is non-empty, logs in with that value only when `wandb.api.api_key` (which reads
  $WANDB_API_KEY) is empty, and uploads every flag as the W&B run's config
  (utils/logging_utils.py `WandbLogger`, trainer/ppo_trainer.py). So the flag carries the
  placeholder `env:WANDB_API_KEY`, and the key reaches the job only in the runtime env that is
  submitted: a 0600 file in a private temporary folder, passed as `ray job submit
  --runtime-env FILE` and removed when the command ends (a command line is readable by every
  user of the machine; the file, like the process environment, only by its owner).
wandb is not a pixelctl dependency: it is imported when a run starts with `logging.wandb` set,
and a missing package or key stops the run before its directory exists (`preflight`).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pixelctl.config.schema import LoggingConfig
from pixelctl.errors import StageError

TB_DIR = "tensorboard"
WANDB_KEY_ENV = "WANDB_API_KEY"
WANDB_KEY_PLACEHOLDER = f"env:{WANDB_KEY_ENV}"  # what OpenRLHF's --logger.wandb.key receives
TRACKED_STAGES = ("sft", "rl", "eval")  # synth writes metrics.jsonl only


def preflight(cfg: LoggingConfig, stage: str, *, wandb_here: bool = True) -> None:
    """Refuse before the run directory exists: W&B asked for without its key or its package.
    `wandb_here=False` when W&B runs elsewhere (the OpenRLHF job on the cluster)."""
    if cfg.wandb is None or stage not in TRACKED_STAGES:
        return
    if not os.environ.get(WANDB_KEY_ENV):
        raise StageError(
            f"logging.wandb is set but ${WANDB_KEY_ENV} is not: export it (wandb.ai/authorize; "
            "pixelctl reads it from the environment only), or remove logging.wandb from the recipe"
        )
    if wandb_here and importlib.util.find_spec("wandb") is None:
        raise StageError(
            "logging.wandb is set but the wandb package is not installed: `pip install wandb` "
            "(pixelctl does not pin it), or remove logging.wandb from the recipe"
        )


def secret_env(cfg: LoggingConfig) -> dict[str, str]:
    """Variables a job needs that are never shown or saved (read now, from the environment)."""
    if cfg.wandb is None or not os.environ.get(WANDB_KEY_ENV):
        return {}
    return {WANDB_KEY_ENV: os.environ[WANDB_KEY_ENV]}


@contextmanager
def submitted_argv(
    argv: Sequence[str], runtime_env: Mapping[str, Any], cfg: LoggingConfig
) -> Iterator[list[str]]:
    """The `ray job submit` argv to execute: the shown one, or, when secrets go with the job,
    `--runtime-env-json SHOWN` replaced by `--runtime-env FILE` holding the shown env plus the
    secrets (0600, in a 0700 temporary folder removed on exit)."""
    secrets = secret_env(cfg)
    argv = list(argv)
    if not secrets:
        yield argv
        return
    folder = tempfile.mkdtemp(prefix="pixelctl-job-")  # 0700
    try:
        path = os.path.join(folder, "runtime_env.json")
        env = {**runtime_env, "env_vars": {**runtime_env.get("env_vars", {}), **secrets}}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(env, f)
        i = argv.index("--runtime-env-json")
        yield [*argv[:i], "--runtime-env", path, *argv[i + 2 :]]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------------------- SFT (TRL)
def report_to(cfg: LoggingConfig) -> list[str] | str:
    """TRL/transformers `report_to` for the recipe."""
    out = (["tensorboard"] if cfg.tensorboard else []) + (["wandb"] if cfg.wandb else [])
    return out or "none"


def point_trainer(trainer: Any, cfg: LoggingConfig, run_path: Path) -> None:
    """Send TRL's TensorBoard callback to `<run>/tensorboard` (transformers 5 has no
    `logging_dir`; its callback reads $TENSORBOARD_LOGGING_DIR or picks `output_dir/runs`), and
    name the W&B project, entity and group through wandb's own variables (no secrets)."""
    for cb in trainer.callback_handler.callbacks:
        if type(cb).__name__ == "TensorBoardCallback":
            cb.logging_dir = str(Path(run_path) / TB_DIR)
    if cfg.wandb is not None:
        for var, value in (
            ("WANDB_PROJECT", cfg.wandb.project),
            ("WANDB_ENTITY", cfg.wandb.entity),
            ("WANDB_RUN_GROUP", cfg.wandb.group),
            ("WANDB_NAME", Path(run_path).name),
        ):
            if value:
                os.environ[var] = value


# ------------------------------------------------------------------------------- writers
def numeric(record: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of a metrics line (numbers only; booleans and text are not curves)."""
    return {
        k: float(v)
        for k, v in record.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


class Tracker:
    """Scalars and images of one run, to TensorBoard and (opt-in) W&B. `resume_step`: the first
    step a resumed leg logs; TensorBoard then drops what an earlier leg logged from it on (a
    SessionLog START event), as metrics.jsonl is rewound to the checkpoint."""

    def __init__(
        self,
        cfg: LoggingConfig,
        run_path: Path,
        *,
        config: Mapping[str, Any] | None = None,
        resume_step: int | None = None,
    ) -> None:
        self.tb: Any = None
        self.wb: Any = None
        if cfg.tensorboard:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter

            self.tb = EventFileWriter(str(Path(run_path) / TB_DIR))
            if resume_step is not None:  # TensorBoard drops what an earlier leg logged past it
                from tensorboard.compat.proto.event_pb2 import Event, SessionLog

                self.tb.add_event(
                    Event(
                        wall_time=time.time(),
                        step=resume_step,
                        session_log=SessionLog(status=SessionLog.START),
                    )
                )
        if cfg.wandb is not None:
            try:
                import wandb
            except ImportError:
                raise StageError("logging.wandb is set but wandb is not installed") from None
            self.wb = wandb.init(
                project=cfg.wandb.project,
                entity=cfg.wandb.entity,
                group=cfg.wandb.group,
                name=Path(run_path).name,
                config=dict(config or {}),
                reinit=True,
            )

    def scalars(self, record: Mapping[str, Any], step: int) -> None:
        values = numeric(record)
        if not values:
            return
        if self.tb is not None:
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.compat.proto.summary_pb2 import Summary

            summary = Summary(
                value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items()]
            )
            self.tb.add_event(Event(wall_time=time.time(), step=step, summary=summary))
        if self.wb is not None:
            self.wb.log(values, step=step)

    def images(self, tag: str, images: Sequence[Any], step: int) -> None:
        """PIL images under `tag/0`, `tag/1`, …"""
        if not images:
            return
        if self.tb is not None:
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.compat.proto.summary_pb2 import Summary

            values = []
            for i, img in enumerate(images):
                buf = io.BytesIO()
                img.convert("RGB").save(buf, format="PNG")
                encoded = Summary.Image(
                    height=img.height,
                    width=img.width,
                    colorspace=3,
                    encoded_image_string=buf.getvalue(),
                )
                values.append(Summary.Value(tag=f"{tag}/{i}", image=encoded))
            self.tb.add_event(
                Event(wall_time=time.time(), step=step, summary=Summary(value=values))
            )
        if self.wb is not None:
            import wandb

            self.wb.log({tag: [wandb.Image(img) for img in images]}, step=step)

    def flush(self) -> None:
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.wb is not None:
            self.wb.finish()
            self.wb = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log_final(
    cfg: LoggingConfig, run_path: Path, scores: Mapping[str, Mapping[str, Any]], config: Any = None
) -> None:
    """Eval's final scores, `<benchmark>/<metric>` at step 0."""
    if not cfg.tensorboard and cfg.wandb is None:
        return
    flat = {f"{b}/{k}": v for b, block in scores.items() for k, v in block.items()}
    with Tracker(cfg, run_path, config=config) as t:
        t.scalars(flat, step=0)


__all__ = [
    "TB_DIR",
    "WANDB_KEY_ENV",
    "WANDB_KEY_PLACEHOLDER",
    "Tracker",
    "log_final",
    "numeric",
    "point_trainer",
    "preflight",
    "report_to",
    "secret_env",
    "submitted_argv",
]
