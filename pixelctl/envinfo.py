"""What this machine runs: package versions against our pins, git state, devices.

Nothing here imports torch or any engine: versions come from installed metadata, GPUs from
`nvidia-smi`, so `pixelctl env` answers instantly and works in a broken environment too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

# The pins the project is tested with. requirements/cpu.in and pyproject's `gpu` extra must agree
# (tests/test_envinfo.py checks it).
CPU_PINS: dict[str, str] = {
    "torch": "2.14.1",
    "torchvision": "0.29.1",
    "transformers": "5.15.0",
    "trl": "1.16.0",
    "accelerate": "1.15.0",
    "datasets": "5.2.0",
    "peft": "0.21.2",
    "ray": "2.55.0",
    "qwen-vl-utils": "0.0.14",
    "math-verify": "0.9.0",
    "typer": "0.29.2",
    "rich": "15.0.0",
    "pydantic": "2.14.3",
    "openai": "3.54.0",
    "openrlhf": "0.11.2",
}
GPU_PINS: dict[str, str] = {
    "openrlhf": "0.11.2",
    "vllm": "0.29.0",
    "torch": "2.13.0",
    "flash-attn": "2.8.3",
    "deepspeed": "0.19.6",
    "transformers": "5.15.0",
    "ray": "2.55.0",
}
EXTRA_REPORTED = ("pillow", "numpy", "pyyaml", "tokenizers", "safetensors", "pyarrow")


@dataclass(frozen=True)
class PinStatus:
    package: str
    wanted: str
    installed: str | None

    @property
    def ok(self) -> bool:
        # local builds add "+cu130"/"+cpu": the public version is what the pin names
        return self.installed is not None and self.installed.split("+")[0] == self.wanted


def installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str | None]:
    names = sorted({*CPU_PINS, *GPU_PINS, *EXTRA_REPORTED})
    return {n: installed_version(n) for n in names}


def pin_status(stack: str = "cpu") -> list[PinStatus]:
    pins = GPU_PINS if stack == "gpu" else CPU_PINS
    return [PinStatus(p, v, installed_version(p)) for p, v in pins.items()]


def git_state(cwd: Path | None = None) -> tuple[str | None, bool | None]:
    """(sha, dirty) of the pixelctl checkout, or (None, None) outside a git work tree."""
    where = str(cwd or Path(__file__).resolve().parent.parent)
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return None, None


def cpu_threads() -> dict[str, object]:
    """The thread settings that decide CPU float-reduction order, and so whether two CPU runs
    are bitwise equal: the OMP/MKL variables and, if this process has already imported torch,
    its intra-op thread count (None otherwise: importing torch here would make `env` slow)."""
    torch = sys.modules.get("torch")
    return {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
        "torch": torch.get_num_threads() if torch is not None else None,
    }


def devices() -> dict[str, object]:
    """CPU count, thread settings and GPUs (names from nvidia-smi, when present)."""
    gpus: list[str] = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            gpus = [g.strip() for g in out.stdout.splitlines() if g.strip()]
        except (OSError, subprocess.TimeoutExpired):
            gpus = []
    return {"cpus": os.cpu_count(), "threads": cpu_threads(), "gpus": gpus}


def _check(argv: list[str]) -> int:
    """`python -m pixelctl.envinfo --check cpu|gpu`: exit 1 naming every pin not satisfied."""
    stack = argv[argv.index("--check") + 1] if "--check" in argv else "cpu"
    bad = [p for p in pin_status(stack) if not p.ok]
    for p in bad:
        print(f"pin not satisfied: {p.package}=={p.wanted} (installed: {p.installed or 'missing'})")
    if not bad:
        print(f"all {stack} pins satisfied")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(_check(sys.argv))
