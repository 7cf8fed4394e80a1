"""Resolve a recipe's `model.name_or_path` to a local folder; there is no model hub access.

- `builtin:<name>` → a model pixelctl builds itself (see `BUILTIN_MODELS`), cached under
  `$PIXELCTL_CACHE` (default `~/.cache/pixelctl`) in a folder named with its build version,
  built on first use. The build goes into a temporary sibling folder that is renamed into
  place, so a reader never sees a half-written model and two processes racing to build it
  both end up with one complete copy.
- an existing local folder → returned as is.
- anything else → `ValueError` explaining how to point at a local folder.

No heavy imports here: the builders import torch/transformers only when they run.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from pixelctl.models.tiny import BUILD_INFO_FILE, TINY_BUILD_VERSION

BUILTIN_PREFIX = "builtin:"
_NUMBER = re.compile(r"(\d+)$")
BUILTIN_MODELS: dict[str, str] = {
    "tiny-qwen2.5-vl": (
        "Random-init Qwen2.5-VL (~0.3M parameters, real model/processor classes, "
        "Qwen chat format and special tokens) built offline from a seed; for CPU tests and demos."
    ),
    "tiny-qwen2.5-vl-h64": (
        "The tiny Qwen2.5-VL with attention heads of 64 (text and vision), which vLLM's kernels "
        "accept; for the one-GPU OpenRLHF smoke (make smoke-gpu)."
    ),
    "tiny-qwen2.5-vl-demo": (
        "The tiny Qwen2.5-VL twice as wide (hidden 128, heads of 32, ~0.8M parameters) with "
        "rope_theta 1e4 and the procedural answers as whole-word tokens, pretrained for ~2 min "
        "to name what a clear panel shows (pixelctl.models.perception); `pixelctl demo`'s "
        "full run, which must learn to zoom on a CPU."
    ),
}
# the demo's build changes on its own (v2: whole-word answer tokens; v3: perception pretraining)
_BUILD_VERSIONS = {**dict.fromkeys(BUILTIN_MODELS, TINY_BUILD_VERSION), "tiny-qwen2.5-vl-demo": "3"}


def cache_root() -> Path:
    """Where builtin models are cached: `$PIXELCTL_CACHE` or `~/.cache/pixelctl`."""
    env = os.environ.get("PIXELCTL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pixelctl"


def builtin_model_dir(name: str) -> Path:
    """The cache folder of a builtin model; the build version in the name invalidates old builds."""
    return cache_root() / f"{name}-v{_BUILD_VERSIONS[name]}"


def resolve_model(name_or_path: str) -> str:
    """Return a local folder that `from_pretrained` can load for `name_or_path`."""
    if name_or_path.startswith(BUILTIN_PREFIX):
        name = name_or_path[len(BUILTIN_PREFIX) :]
        if name not in BUILTIN_MODELS:
            known = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)
            raise ValueError(f"unknown builtin model {name_or_path!r}; available: {known}")
        return str(build_once(builtin_model_dir(name), _builder(name)))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path if (path / "config.json").is_file() else run_checkpoint(path))
    if path.exists():
        raise ValueError(f"model path {name_or_path!r} is a file; point at the model's folder")
    raise ValueError(
        f"model {name_or_path!r} is not a local folder, and pixelctl has no model hub access. "
        "Download the model where you have network access (e.g. `hf download "
        f"{name_or_path} --local-dir /models/NAME`), copy the folder here and set "
        "model.name_or_path to that folder, or use one of: "
        + ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)
    )


def run_checkpoint(run_dir: Path) -> Path:
    """The model a stage's run directory produced: `checkpoints/final` (rl), `model/` (sft),
    else the checkpoint with the highest number (`checkpoint-<step>`, `round-<n>`) holding a
    `config.json` — a run stopped before its end."""
    for final in (run_dir / "checkpoints" / "final", run_dir / "model"):
        if (final / "config.json").is_file():
            return final
    saved = [p for p in (run_dir / "checkpoints").glob("*") if (p / "config.json").is_file()]
    if not saved:
        raise ValueError(
            f"{run_dir}: no model in it (looked for config.json, model/, checkpoints/final/, "
            "checkpoints/*/); point at a finished run or a model folder"
        )
    return max(saved, key=lambda p: int(m.group(1)) if (m := _NUMBER.search(p.name)) else -1)


def _builder(name: str) -> Callable[[Path], object]:
    from pixelctl.models import tiny  # looked up at call time so tests can substitute the builder

    def h64(out_dir: Path) -> object:
        return tiny.build_tiny_model(out_dir, head_dim=64)

    def demo(out_dir: Path) -> object:
        from pixelctl.models import perception
        from pixelctl.synth.procedural import ANSWER_WORDS

        tiny.build_tiny_model(out_dir, head_dim=32, rope_theta=1e4, words=ANSWER_WORDS)
        stats = perception.pretrain(out_dir, on_step=_log_pretraining)
        tiny.add_build_info(out_dir, perception=stats)
        return out_dir

    builders = {"tiny-qwen2.5-vl": tiny.build_tiny_model, "tiny-qwen2.5-vl-h64": h64}
    return {**builders, "tiny-qwen2.5-vl-demo": demo}[name]


def _log_pretraining(done: int, total: int, loss: float) -> None:
    # plain lines: the build can run under a stage's own progress bar (one live display at a time)
    if done == 1 or done % 50 == 0 or done == total:
        print(
            f"building builtin:tiny-qwen2.5-vl-demo (once): perception pretraining step "
            f"{done}/{total}, loss {loss:.4f}",
            file=sys.stderr,
            flush=True,
        )


def is_complete(folder: Path) -> bool:
    """A build is complete once its info file (written last) exists."""
    return (folder / BUILD_INFO_FILE).is_file()


def build_once(final: Path, build: Callable[[Path], object]) -> Path:
    """Build into a temp sibling of `final` and rename it into place, unless already built.

    If another process renames its copy first, ours is discarded: builds are deterministic
    (the demo model's pretraining too, on one machine at one thread count),
    so both copies are identical and the winner's is as good as ours.
    """
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        build(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be readable
        try:
            # rename() refuses a non-empty destination, so exactly one racer wins.
            tmp.rename(final)
        except OSError:
            if not is_complete(final):
                raise RuntimeError(
                    f"{final} exists but is not a complete build; delete it and retry"
                ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
