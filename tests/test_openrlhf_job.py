"""The job's runtime env against Ray's own merge code and train_ppo_ray's own `ray.init` env.

`train_ppo_ray.train` calls `ray.init(runtime_env={"env_vars": {...}})` inside the job driver;
Ray (`ray/_private/worker.py`) merges that with the job's runtime env by
`ray.runtime_env.runtime_env._merge_runtime_env` and refuses any key present in both. The keys
are read from the installed source, and the env is the one `pixelctl rl … --dry-run` prints.
"""

from __future__ import annotations

import ast
import json
import re
from importlib.util import find_spec
from pathlib import Path

import pytest

from pixelctl.config import load_recipe
from pixelctl.engines.openrlhf import submit
from pixelctl.engines.openrlhf.job import DRIVER_ENV_KEYS, check_paths, run_paths
from pixelctl.errors import StageError

ROOT = Path(__file__).resolve().parent.parent
DRY_RUN_RECIPES = ["7b_a800", "smoke_1gpu"]


def driver_env_keys() -> set[str]:
    """The env_vars keys of the `ray.init(runtime_env=…)` call in the installed train()."""
    source = (Path(find_spec("openrlhf").origin).parent / "cli" / "train_ppo_ray.py").read_text()
    train = next(n for n in ast.parse(source).body if getattr(n, "name", "") == "train")
    call = next(
        n for n in ast.walk(train) if isinstance(n, ast.Call) and ast.unparse(n.func) == "ray.init"
    )
    env = next(k.value for k in call.keywords if k.arg == "runtime_env")
    env_vars = next(v for k, v in zip(env.keys, env.values, strict=True) if k.value == "env_vars")
    return {k.value for k in env_vars.keys}


def dry_run_env(name: str, tmp_path: Path) -> dict:
    loaded = load_recipe(ROOT / "recipes" / f"{name}.yaml", [f"launch.runs_root={tmp_path}"])
    text = submit.plan(loaded)
    match = re.search(r"--runtime-env-json '(\{.*?\})' \\", text)
    assert match, text
    return json.loads(match.group(1))


def test_the_driver_keys_we_avoid_are_the_installed_ones():
    assert driver_env_keys() == set(DRIVER_ENV_KEYS)


@pytest.mark.parametrize("name", DRY_RUN_RECIPES)
def test_dry_run_env_merges_with_train_ppo_rays_ray_init(name, tmp_path):
    from ray.runtime_env.runtime_env import _merge_runtime_env

    job = dry_run_env(name, tmp_path)
    driver = {"env_vars": {k: "x" for k in driver_env_keys()}}
    merged = _merge_runtime_env(job, driver, override=False)
    assert merged is not None  # None is Ray's "Failed to merge the Job's runtime env"
    assert merged["py_modules"] == job["py_modules"]
    assert set(merged["env_vars"]) == set(job["env_vars"]) | driver_env_keys()
    # today's bug, reproduced with the same code: a shared key is refused
    clash = {**job, "env_vars": {**job["env_vars"], "TOKENIZERS_PARALLELISM": "false"}}
    assert _merge_runtime_env(clash, driver, override=False) is None


def test_a_run_path_with_a_dataset_separator_is_refused(tmp_path):
    recipe = load_recipe(ROOT / "recipes/7b_a800.yaml").recipe
    check_paths(run_paths(recipe, tmp_path / "ok-run", pixelctl_dir="/p"))
    for bad in ("a,b", "me@host"):
        with pytest.raises(StageError, match="blending_datasets"):
            check_paths(run_paths(recipe, tmp_path / bad, pixelctl_dir="/p"))


def test_blending_datasets_really_splits_on_a_comma(tmp_path):
    """Why: OpenRLHF's loader reads `a,b/prompts.jsonl` as two datasets."""
    from types import SimpleNamespace

    pytest.importorskip("datasets")
    from openrlhf.datasets.utils import blending_datasets

    good = tmp_path / "run" / "prompts.jsonl"
    good.parent.mkdir()
    good.write_text('{"prompt": "p", "label": "l"}\n')
    strategy = SimpleNamespace(print=lambda *a: None, is_rank_0=lambda: False)
    assert len(blending_datasets(str(good), None, strategy)) == 1
    with pytest.raises(Exception):  # noqa: B017 - whatever `datasets` raises for "a" / "b"
        blending_datasets(str(tmp_path / "a,b" / "prompts.jsonl"), None, strategy)
