"""A real local Ray head, a job submitted through Ray's job API with the runtime env pixelctl
renders, OpenRLHF's own parser and `ray.init` in the job driver (tests/helpers/openrlhf_entry.py),
and a Ray worker that builds our AgentExecutor as OpenRLHF does and runs one rollout through the
real MultiTurnAgentExecutor with the tiny model's processor.

OpenRLHF here is a patched COPY of the installed package (the venv stays untouched), shipped to
the job as an extra `py_modules` entry; a worker started without it is stopped by the patch
check naming its node. Only vLLM's token generation is scripted (no GPU).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import pytest
from PIL import Image

from pixelctl.config import load_recipe
from pixelctl.engines.openrlhf import plugin
from pixelctl.engines.openrlhf.flags import max_len
from pixelctl.engines.openrlhf.job import entrypoint_argv, run_paths, runtime_env

ROOT = Path(__file__).resolve().parent.parent
PATCHES = sorted((ROOT / "patches" / "openrlhf-0.11.2").glob("*.patch"))
ENTRY = ROOT / "tests" / "helpers" / "openrlhf_entry.py"

pytestmark = pytest.mark.slow


def patched_openrlhf(dest: Path) -> Path:
    """The installed openrlhf package copied to `dest/openrlhf` with every patch applied as
    `make apply-patches` does (--dry-run first, --fuzz=0)."""
    if shutil.which("patch") is None:
        pytest.skip("the `patch` program is not installed")
    src = Path(find_spec("openrlhf").origin).parent
    shutil.copytree(src, dest / "openrlhf", ignore=shutil.ignore_patterns("__pycache__"))
    for p in PATCHES:
        for dry in (True, False):
            cmd = ["patch", "-p1", "--fuzz=0", "-f", "-s", "-d", str(dest), "-i", str(p)]
            done = subprocess.run(cmd + (["--dry-run"] if dry else []), capture_output=True)
            assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return dest / "openrlhf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """`ray start --head --block` in its own process group, always stopped (by its pid)."""
    if shutil.which("ray", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the ray CLI is not installed")
    port, dash = _free_port(), _free_port()
    temp = Path(f"/tmp/rpx{os.getpid()}")
    log = tmp_path_factory.mktemp("ray") / "head.log"
    cmd = [
        str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
        f"--port={port}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
        "--num-cpus=2", "--disable-usage-stats", f"--temp-dir={temp}",
        "--include-dashboard=true",
    ]  # fmt: skip
    env = {**os.environ, "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    address = f"http://127.0.0.1:{dash}"
    try:
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + 60
        while True:
            try:
                client = JobSubmissionClient(address)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"ray head did not come up: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield client
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_job_through_ray_with_the_rendered_env(ray_head, tmp_path):
    from ray.job_submission import JobStatus

    from pixelctl.models.resolve import resolve_model

    tiny_model_dir = resolve_model("builtin:tiny-qwen2.5-vl")  # built once, cached
    recipe = load_recipe(
        ROOT / "recipes/smoke_1gpu.yaml", [f"model.name_or_path={tiny_model_dir}"]
    ).recipe
    run = tmp_path / "run"
    paths = run_paths(recipe, run, model=str(tiny_model_dir))
    (run / "job").mkdir(parents=True)
    shutil.copyfile(plugin.__file__, paths.agent_plugin)
    env = runtime_env(recipe, paths)
    patched = patched_openrlhf(tmp_path / "patched")
    # test-only: this venv's openrlhf is unpatched, so the job also ships the patched copy
    env = {**env, "py_modules": [*env["py_modules"], str(patched)]}
    img = Image.new("RGB", (400, 300), "white")
    img.save(tmp_path / "scene.png")
    spec = {
        "model": str(tiny_model_dir),
        "image": str(tmp_path / "scene.png"),
        "pixelctl_dir": paths.pixelctl_dir,
    }
    argv = entrypoint_argv(recipe, paths)
    assert argv[:5] == ["env", "TOKENIZERS_PARALLELISM=false", "python", "-m",
                        "openrlhf.cli.train_ppo_ray"]  # fmt: skip
    entry = [*argv[:2], sys.executable, str(ENTRY), json.dumps(spec), *argv[5:]]
    job = ray_head.submit_job(
        entrypoint=" ".join(subprocess.list2cmdline([a]) for a in entry), runtime_env=env
    )
    deadline = time.monotonic() + 180
    while (status := ray_head.get_job_status(job)) not in {
        JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED
    }:  # fmt: skip
        assert time.monotonic() < deadline, ray_head.get_job_logs(job)[-3000:]
        time.sleep(1)
    logs = ray_head.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]
    assert "Failed to merge the Job's runtime env" not in logs
    report = json.loads(next(ln for ln in logs.splitlines() if ln.startswith("PROBE "))[6:])

    # OpenRLHF's own parser and checks ran on the rendered flags
    assert report["parsed"] == {
        "agent_func_path": paths.agent_plugin,
        "remote_url": ["agent"],
        "save_steps": 1,
        "max_len": max_len(recipe),
    }
    # ray.init merged train_ppo_ray's env with ours
    assert {"TOKENIZERS_PARALLELISM", "NCCL_DEBUG", "PIXELCTL_EXECUTOR_JSON"} <= set(
        report["job_env"]
    )
    probe = report["probe"]
    assert (
        "PIXELCTL_REWARD_JSON" in probe["env_keys"] and "PIXELCTL_ROLLOUT_JSON" in probe["env_keys"]
    )
    assert probe["crop_max_pixels"] == recipe.executor.bounds.train.crop_max_pixels
    # the multi-turn image path: turn 2 carries the prompt image and the crop
    assert [c["images"] for c in probe["calls"]] == [1, 2] and probe["grid_rows"] == 2
    assert probe["reward"] == 1.0 and probe["extra_logs"]["pixelctl/failed"] == 0.0
    assert probe["shared_max_tokens_after"] == recipe.rl.rollout.max_new_tokens  # untouched
    # the patches are detected in the worker (the shipped copy) …
    assert "runtime_resources/py_modules_files" in probe["openrlhf"]  # the shipped copy
    assert probe["missing"] == []
    # … and a worker on the unpatched installation is stopped, naming its node and the fix
    assert "is not patched for pixelctl" in report["unpatched"]
    assert "on node " in report["unpatched"] and "make apply-patches" in report["unpatched"]
