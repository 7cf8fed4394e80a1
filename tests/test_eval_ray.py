"""Ray sharding: two CPU actors give the same samples file as one in-process worker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pixelctl.backends import BackendSpec
from pixelctl.evaluation.loaders import load_source
from pixelctl.evaluation.runner import run_eval
from tests.helpers import eval_fixtures as fx
from tests.test_eval_runner import SETTINGS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cpu():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_two_actors_match_one_worker(ray_cpu, tiny_model_dir: Path, tmp_path: Path) -> None:
    queries = []
    for name in ("vstar", "tallyqa", "infovqa", "mvbench"):
        queries += load_source(name, getattr(fx, name)(tmp_path / name), "official")
    settings = dataclasses.replace(SETTINGS, chunk_size=2, max_new_tokens=8)
    spec = BackendSpec(kind="hf", model_path=str(tiny_model_dir), batch_size=2)
    single = run_eval(queries, tmp_path / "one", settings, backend=spec, workers=1)
    sharded = run_eval(queries, tmp_path / "two", settings, backend=spec, workers=2)
    assert [r["qid"] for r in sharded] == [q.qid for q in queries]
    assert (tmp_path / "two" / "samples.jsonl").read_bytes() == (
        tmp_path / "one" / "samples.jsonl"
    ).read_bytes()
    assert all(r["completion_tokens"] > 0 for r in single)
    crops = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.png"))
    assert crops == sorted(
        p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.png")
    )
