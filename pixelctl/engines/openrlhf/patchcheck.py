"""Proof that this node's OpenRLHF calls pixelctl's hook, or a stop that says where and why.

The patched functions run inside OpenRLHF's `PPOTrainer` actor, which Ray may place on any node,
and only pixelctl travels with the job (`py_modules`). On a node whose OpenRLHF is unpatched the
run would train on accuracy alone with SSR off and nothing would say so. So:

- `worker_setup` is the job's `worker_process_setup_hook` (job.py): Ray runs it in every worker
  process of the job before the worker takes its first task, on every node (the trainer, the
  vLLM engines, the DeepSpeed actors). On a node without the patches it raises, Ray ends that
  worker, and the driver's `ray.get` fails with this module's message: the node, the missing
  call, and `make apply-patches`.
- `hook.replay_training_batch` checks again before the first round trains (the group hook must
  have run on the samples), in the process that trains.

Checking reads the installed source files (AST) instead of importing them: importing
`samples_generator` pulls in vLLM, which a CPU check or the driver may lack. Python imports the
same files, so what is checked is what runs. We chose checking over shipping a patched OpenRLHF
in `py_modules`: a shipped copy would run against each node's own vLLM/DeepSpeed build, while
`make install-gpu` keeps the patched package and its pinned dependencies installed together.
"""

from __future__ import annotations

import ast
import importlib.util
import socket
from dataclasses import dataclass
from pathlib import Path

FIX = "run `make apply-patches` (or `make install-gpu`) on that node with the job's Python"


@dataclass(frozen=True)
class Requirement:
    """A function of OpenRLHF that must call a hook function."""

    path: str  # inside the openrlhf package
    cls: str
    function: str
    calls: str
    patch: str


REQUIRED = (
    Requirement(
        "trainer/ppo_utils/samples_generator.py",
        "SamplesGenerator",
        "_generate_vllm",
        "shape_group_rewards",
        "0001-group-reward-hook.patch",
    ),
    Requirement(
        "trainer/ppo_trainer.py",
        "BasePPOTrainer",
        "train_step",
        "replay_training_batch",
        "0002-selective-sample-replay.patch",
    ),
)


class PatchesMissing(RuntimeError):
    """This node's OpenRLHF does not call pixelctl's hook where the run needs it."""


def openrlhf_dir() -> Path | None:
    """The `openrlhf` package this Python would import (nothing is imported)."""
    spec = importlib.util.find_spec("openrlhf")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _calls(source: str, req: Requirement) -> bool:
    tree = ast.parse(source)
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == req.cls):
        for fn in cls.body:
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) and fn.name == req.function:
                return any(
                    isinstance(n, ast.Call)
                    and (
                        (isinstance(n.func, ast.Attribute) and n.func.attr == req.calls)
                        or (isinstance(n.func, ast.Name) and n.func.id == req.calls)
                    )
                    for n in ast.walk(fn)
                )
    return False


def missing(root: Path | None = None) -> list[str]:
    """What is not patched in the OpenRLHF at `root` (default: the importable one)."""
    root = root if root is not None else openrlhf_dir()
    if root is None:
        return ["openrlhf is not installed in this Python"]
    out = []
    for req in REQUIRED:
        path = root / req.path
        try:
            ok = _calls(path.read_text(encoding="utf-8"), req)
        except (OSError, SyntaxError) as exc:
            out.append(f"{path}: unreadable ({exc})")
            continue
        if not ok:
            out.append(
                f"{req.cls}.{req.function} in {path} does not call {req.calls} ({req.patch})"
            )
    return out


def node_name() -> str:
    try:
        import ray

        ip = ray.util.get_node_ip_address()
    except Exception:  # not in a Ray process
        ip = "?"
    return f"{socket.gethostname()} ({ip})"


def require_patches(root: Path | None = None, *, where: str | None = None) -> None:
    """Raise `PatchesMissing` naming the node, what is missing and the fix."""
    problems = missing(root)
    if problems:
        raise PatchesMissing(
            f"pixelctl: OpenRLHF on node {where or node_name()} is not patched for pixelctl: "
            + "; ".join(problems)
            + f". Without the patches the run would train on accuracy alone with SSR off. {FIX}."
        )


def worker_setup() -> None:
    """Ray `worker_process_setup_hook` of every pixelctl OpenRLHF job (see module doc)."""
    require_patches()
