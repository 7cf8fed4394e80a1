"""The pins pixelctl reports are the pins it installs."""

import re
import sys
from pathlib import Path

import tomllib

from pixelctl.envinfo import CPU_PINS, GPU_PINS, PinStatus

ROOT = Path(__file__).resolve().parent.parent


def pins_in(lines):
    out = {}
    for line in lines:
        m = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;]+)", line.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_cpu_pins_match_requirements_and_makefile():
    req = pins_in((ROOT / "requirements/cpu.in").read_text().splitlines())
    makefile = (ROOT / "Makefile").read_text()
    for pkg, version in CPU_PINS.items():
        if pkg in ("torch", "torchvision", "openrlhf"):  # installed by the Makefile directly
            assert f"{pkg}=={version}" in makefile, pkg
        else:
            assert req.get(pkg) == version, pkg


def test_gpu_pins_match_the_extra():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["gpu"]
    assert pins_in(extra) == {
        **{"openrlhf": "0.11.2"},
        **GPU_PINS,
        "qwen-vl-utils": "0.0.14",
        "math-verify": "0.9.0",
    }


def test_local_build_suffix_still_satisfies_a_pin():
    assert PinStatus("torch", "2.14.1", "2.14.1+cu130").ok
    assert not PinStatus("torch", "2.14.1", "2.13.0").ok
    assert not PinStatus("torch", "2.14.1", None).ok


def test_cpu_threads_reads_the_variables_and_an_imported_torch(monkeypatch) -> None:
    import torch

    from pixelctl.envinfo import cpu_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    got = cpu_threads()
    assert got == {
        "OMP_NUM_THREADS": "3",
        "MKL_NUM_THREADS": None,
        "torch": torch.get_num_threads(),
    }
    monkeypatch.delitem(sys.modules, "torch")  # a process that never imported torch
    assert cpu_threads()["torch"] is None
