"""`pixelctl rl` with `rl.engine: openrlhf`: plan (--dry-run) and run (submit to Ray).

`run` does, in order: check that a Ray cluster with GPUs is there (else stop and name the
alternatives), convert and validate the RL data into `<run>/data/prompts.jsonl` (report
beside it), resolve the starting checkpoint, copy the agent plugin into `<run>/job/`, write
the exact command to `<run>/job/submit.sh`, then `ray job submit` it, stream the job's logs to
the console and `<run>/logs/job.log`, and append OpenRLHF's per-step status to
`<run>/metrics.jsonl`. Checkpoints land in `<run>/checkpoints` (final model:
`checkpoints/final`), TensorBoard in `<run>/tensorboard`.
"""

from __future__ import annotations

import ast
import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

from pixelctl import tracking
from pixelctl.config import LoadedRecipe
from pixelctl.engines.openrlhf import OPENRLHF_VERSION
from pixelctl.engines.openrlhf.data import PromptBudget
from pixelctl.engines.openrlhf.flags import (
    actor_ranks,
    check_recipe,
    max_len,
    observation_reserve,
    trim_for_ranks,
)
from pixelctl.engines.openrlhf.job import (
    check_paths,
    default_model,
    render_command,
    run_paths,
    runtime_env,
    submit_argv,
)
from pixelctl.engines.openrlhf.modelview import stage_model
from pixelctl.engines.openrlhf.patchcheck import PatchesMissing, openrlhf_dir, require_patches
from pixelctl.errors import StageError
from pixelctl.rl.schedule import plan_schedule
from pixelctl.rundir import RunDir

ALTERNATIVES = (
    "run `pixelctl rl RECIPE rl.engine=local` (single machine, CPU or one GPU), launch from a "
    "GPU machine of a Ray cluster after `make install-gpu` (it applies pixelctl's OpenRLHF "
    "patches), or use `pixelctl rl RECIPE --dry-run` to print the command for your cluster"
)
_STEP = re.compile(r"Global step (\d+): (\{.*\})\s*$")


class OpenRLHFUnavailable(StageError):
    """No Ray cluster with GPUs to run OpenRLHF on; the message names the alternatives."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot run the OpenRLHF engine here: {reason}. Instead, {ALTERNATIVES}.")


def plan(loaded: LoadedRecipe) -> str:
    """The full command and the data conversion a run would do (nothing is written)."""
    r = loaded.recipe
    run_dir = Path(r.launch.runs_root).resolve() / "rl" / f"{loaded.name}-<timestamp>"
    model, note = _model(loaded, strict=False)
    paths = run_paths(r, run_dir, model=model)
    check_recipe(r)
    check_paths(paths)
    schedule = plan_schedule(r.rl, r.rl.expected_prompts)
    return "\n".join(
        [
            f"pixelctl rl — OpenRLHF {OPENRLHF_VERSION} on Ray ({r.launch.rl.ray_address})",
            f"  start from   {model}{note}",
            f"  data         {', '.join(r.rl.data) or '(rl.data is empty)'}",
            f"               → {paths.prompt_data} (validated; every reject listed in "
            "prompts.jsonl.report.json)",
            f"  rounds       {schedule.describe()}; {r.rl.rollout.n_samples} samples per prompt "
            f"(for rl.expected_prompts={r.rl.expected_prompts})",
            f"  reward       {r.rl.reward.mode}; replay: SSR={r.rl.replay.ssr}, "
            f"zero-signal filter={r.rl.replay.zero_signal_filter} (pixelctl patches)",
            f"  plugin       {paths.agent_plugin} (copied from pixelctl"
            + (
                ", the smoke plugin: one scripted crop on turn 1)"
                if r.launch.rl.smoke_plugin
                else ")"
            ),
            *_scale_lines(r),
            "",
            render_command(submit_argv(r, paths)),
        ]
    )


def _scale_lines(r) -> list[str]:
    """What the plan promises about the cluster: the rank split, the patches, the memory."""
    from pixelctl.config import memory

    ranks = actor_ranks(r)
    lines = [
        f"  ranks        {ranks} actor ranks; every round's samples divide over them (full "
        f"rounds by the recipe; the last, partial round: prompts are trimmed at conversion to "
        f"a multiple of {ranks // math.gcd(r.rl.rollout.n_samples, ranks)}, listed as rejects)",
        f"  context      --data.max_len {max_len(r)} = executor.max_trajectory_tokens "
        f"{r.executor.max_trajectory_tokens} + the largest observation {observation_reserve(r)}",
        *(
            [
                f"  sampling     every turn at rl.rollout.temperature {r.rl.rollout.temperature}; "
                f"temperature_after_tool {r.rl.rollout.temperature_after_tool} is not applied "
                "(OpenRLHF 0.11.2 scores every token at --rollout.temperature: off-policy)"
            ]
            if r.rl.rollout.temperature_after_tool not in (None, r.rl.rollout.temperature)
            else []
        ),
        "  patches      checked on every node (Ray worker_process_setup_hook) and before round "
        "1; an unpatched node stops the job naming it and `make apply-patches`",
    ]
    for name, value, how in memory.rows(r):
        lines.append(f"  {name:<12} {value} ({how})")
    if warning := memory.estimate(r).warning():
        lines.append(f"  WARNING      {warning}")
    return lines


def _model(loaded: LoadedRecipe, *, strict: bool) -> tuple[str, str]:
    """The starting checkpoint as an absolute folder when it exists here, else as written."""
    from pixelctl.models.resolve import BUILTIN_PREFIX, resolve_model

    r = loaded.recipe
    name = r.rl.init_from or r.model.name_or_path
    if not strict and name.startswith(BUILTIN_PREFIX):
        return name, "  (built by pixelctl at launch)"  # a dry run builds nothing
    try:
        return str(Path(resolve_model(name)).resolve()), ""
    except ValueError as exc:
        if strict and r.rl.init_from:
            raise StageError(f"rl.init_from: {exc}") from None
        # a hub id is fine on a cluster with a model cache; OpenRLHF resolves it there
        return default_model(r), "  (not found here; resolved on the cluster)"


def preflight(address: str) -> None:
    """Refuse early, with the alternatives, when this machine cannot reach a GPU Ray cluster."""
    host = urlparse(address).hostname or ""
    if host in {"127.0.0.1", "localhost", ""} and not _local_gpus():
        raise OpenRLHFUnavailable(
            f"this machine has no GPU and launch.rl.ray_address ({address}) points at it"
        )
    if shutil.which("ray") is None:
        raise OpenRLHFUnavailable("the `ray` command is not installed (pip install 'ray[default]')")
    try:
        from ray.job_submission import JobSubmissionClient

        JobSubmissionClient(address)
    except Exception as exc:  # connection refused, no dashboard, missing ray[default]
        raise OpenRLHFUnavailable(f"no Ray cluster answers at {address} ({exc})") from None


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


def run(loaded: LoadedRecipe, run: RunDir) -> None:
    """Convert the data, write the job files, submit, stream logs, record metrics."""
    from rich.console import Console

    from pixelctl.engines.openrlhf.data import convert

    r, console = loaded.recipe, Console()
    preflight(r.launch.rl.ray_address)
    if not r.rl.data:
        raise StageError("rl.data is empty; list RL prompt files or a synth run directory")
    check_recipe(r)
    if openrlhf_dir() is not None:  # the nodes check again when each worker starts
        try:
            require_patches(where="the launching machine")
        except PatchesMissing as exc:
            raise StageError(str(exc)) from None
    model, _ = _model(loaded, strict=True)
    root = run.path.resolve()
    view = stage_model(model, root / "model", r.executor.bounds.train)
    paths = run_paths(r, root, model=str(view), resume=bool(run.meta().get("resumes")))
    check_paths(paths)
    budget = PromptBudget.from_recipe(r, _text_counter(model))
    try:
        report = convert(
            r.rl.data,
            paths.prompt_data,
            mode=r.prompt.mode,
            max_images=r.executor.max_images,
            budget=budget,
            trim=lambda n: trim_for_ranks(n, r),
        )
    except FileNotFoundError as exc:
        raise StageError(f"rl.data: {exc}") from None
    console.print(f"data: {report.summary()} → {paths.prompt_data}")
    for reject in report.rejects[:5]:
        console.print(f"[yellow]rejected[/yellow] {reject}")
    if not report.written:
        raise StageError(
            f"no usable RL prompts in {r.rl.data} (see {paths.prompt_data}.report.json)"
        )
    argv = _write_job(r, paths, root)
    # the shown argv is what submit.sh holds; secrets (W&B key) ride in a private file only
    with tracking.submitted_argv(argv, runtime_env(r, paths), r.logging) as real:
        _submit(real, root / "logs" / "job.log", run, console)


def _text_counter(model: str):
    """Token count of a text with the start checkpoint's tokenizer (conversion's length check)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _write_job(recipe, paths, root: Path) -> list[str]:
    from pixelctl.engines.openrlhf import plugin, smoke_plugin

    job = root / "job"
    job.mkdir(parents=True, exist_ok=True)
    source = smoke_plugin if recipe.launch.rl.smoke_plugin else plugin
    shutil.copyfile(source.__file__, paths.agent_plugin)
    argv = submit_argv(recipe, paths)
    (job / "submit.sh").write_text("#!/usr/bin/env bash\n" + render_command(argv) + "\n")
    (job / "runtime_env.json").write_text(json.dumps(runtime_env(recipe, paths), indent=2) + "\n")
    return argv


def _submit(argv: list[str], log: Path, run: RunDir, console) -> None:
    """`ray job submit` blocks and streams the job's logs; we tee them and parse the steps."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        log.open("a", encoding="utf-8") as sink,
        subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            console.print(line.rstrip("\n"), markup=False, highlight=False)
            record = parse_step(line)
            if record is not None:
                run.log_metrics(record)
    if proc.returncode != 0:
        raise StageError(f"the Ray job failed (exit {proc.returncode}); see {log}")


def parse_step(line: str) -> dict | None:
    """OpenRLHF's `✨ Global step N: {...}` status line as a metrics record, else None."""
    match = _STEP.search(line)
    if not match:
        return None
    try:
        status = ast.literal_eval(match.group(2))
    except (ValueError, SyntaxError):
        return None
    numbers = {k: v for k, v in status.items() if isinstance(v, int | float)}
    return {"step": int(match.group(1)), **numbers}
