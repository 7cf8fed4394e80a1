"""Trainer callbacks: `metrics.jsonl` lines (loss, lr, grad norm, tokens/s, ETA) and a rich bar.

Only the main process writes or draws (workers under accelerate stay quiet).
"""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback

KEYS = {
    "loss": "loss",
    "learning_rate": "lr",
    "grad_norm": "grad_norm",
    "mean_token_accuracy": "token_accuracy",
    "entropy": "entropy",
    "num_tokens": "tokens",
}


class MetricsCallback(TrainerCallback):
    """One JSON line per logging step, appended through `RunDir.log_metrics`."""

    def __init__(self, run: Any, resumed_from: int = 0) -> None:
        self.run = run
        self.resumed_from = resumed_from
        self._t0 = self._last_t = time.monotonic()
        self._last_tokens: float | None = None
        self._first_step: int | None = None
        self._tokens0 = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._t0 = self._last_t = time.monotonic()
        self._first_step = state.global_step
        # TRL counts `num_tokens` from this process's start, not from the checkpoint: a resumed
        # run adds the count logged at the checkpoint's step, so the column stays cumulative
        self._tokens0 = 0.0
        if self.resumed_from:
            at = [r for r in self.run.read_metrics() if r.get("step") == self.resumed_from]
            self._tokens0 = float(at[-1].get("tokens", 0.0)) if at else 0.0

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any
    ) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        now = time.monotonic()
        rec: dict[str, Any] = {
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": round(float(logs.get("epoch", state.epoch or 0)), 4),
        }
        rec.update({KEYS[k]: float(v) for k, v in logs.items() if k in KEYS})
        if "tokens" in rec:
            rec["tokens"] += self._tokens0
        tokens = rec.get("tokens")
        if tokens is not None and self._last_tokens is not None and now > self._last_t:
            rec["tokens_per_s"] = round((tokens - self._last_tokens) / (now - self._last_t), 1)
        self._last_tokens, self._last_t = tokens, now
        done = state.global_step - (self._first_step or 0)
        if done > 0:
            per_step = (now - self._t0) / done
            rec["eta_s"] = round(per_step * max(state.max_steps - state.global_step, 0), 1)
        # a resumed run's lines equal an uninterrupted run's; the resume marker line says where
        self.run.log_metrics(rec)


class RichProgress(TrainerCallback):
    """A rich progress bar with the latest loss and learning rate, on the main process."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if not state.is_world_process_zero:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("sft"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "sft", total=state.max_steps, completed=state.global_step, info=""
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=state.global_step)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any
    ) -> None:
        if self._progress is not None and logs and "loss" in logs:
            info = f"loss {logs['loss']:.4f}  lr {logs.get('learning_rate', 0):.2e}"
            self._progress.update(self._task, info=info)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
