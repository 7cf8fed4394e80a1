"""The LLM writer against a real HTTP server on loopback with latency, 429/500 and timeouts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pixelctl.config.schema import WriterConfig
from pixelctl.synth.cache import ResponseCache, request_key
from pixelctl.synth.pipeline import run_synth
from pixelctl.synth.writers.base import WriterError
from pixelctl.synth.writers.llm import LLMWriter
from tests.helpers.fake_openai_server import (
    FakeOpenAIServer,
    fail_always,
    fail_first,
    fail_mixed,
    last_user_text,
)
from tests.test_synth_pipeline import Killed, _files, _kill_after
from tests.test_synth_support import SMALL_BOUNDS, read_jsonl, small_recipe

KEY_ENV, KEY = "PIXELCTL_TEST_SYNTH_KEY", "sk-test-DO-NOT-LEAK-4711"
RETRIES = 3


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def _writer(url: str, **kw) -> dict:
    return {
        "kind": "llm",
        "base_url": url,
        "model": "fake-4o",
        "api_key_env": KEY_ENV,
        "concurrency": 4,
        "max_retries": RETRIES,
        "timeout_s": 0.5,
        "usd_per_1k_input_tokens": 0.0025,
        "usd_per_1k_output_tokens": 0.01,
        **kw,
    }


def _recipe(tmp: Path, url: str, **writer):
    return small_recipe(tmp, synth={"writer": _writer(url, **writer)})


def _jobs_per_kind(stats: dict) -> int:
    k = stats["by_kind"]
    return 2 * k.get("single_pass", 0) + 3 * k.get("self_correction", 0) + k.get("text_only", 0)


def test_every_seed_once_with_bounded_retries_under_injected_faults(tmp_path: Path) -> None:
    fault = fail_mixed(0.5, ("429", "500", "timeout"), max_failures=2)
    with FakeOpenAIServer(latency_s=0.02, fault=fault, hang_s=5.0, api_key=KEY) as srv:
        stats = run_synth(_recipe(tmp_path, srv.base_url), tmp_path / "out", backoff_s=0.01)
    recs = read_jsonl(tmp_path / "out" / "sft.jsonl")
    assert sorted(r["id"] for r in recs) == [f"procedural-train-{i:05d}" for i in range(8)]
    assert stats["rejects"]["total"] == 0
    assert {"429", "500", "timeout"} <= set(srv.outcomes)  # every fault kind was exercised
    assert max(srv.attempts.values()) <= 3  # at most 2 injected failures, then success
    jobs = _jobs_per_kind(stats)
    assert len(srv.attempts) == jobs == srv.outcomes["ok"]
    w = stats["this_run"]["writer"]
    assert w["requests"] == srv.total_requests and w["retries"] == srv.total_requests - jobs
    assert stats["tokens"]["entries"] == jobs and stats["tokens"]["input_tokens"] > 0
    expected = stats["tokens"]["input_tokens"] * 0.0025 + stats["tokens"]["output_tokens"] * 0.01
    assert stats["tokens"]["usd"] == pytest.approx(expected / 1000, abs=1e-6)
    text = recs[0]["message_list"][2]["content"][0]["text"]
    assert text.startswith("Reply ")  # the endpoint's words, composed with the call


def test_retries_stop_at_the_limit_and_the_seed_is_rejected(tmp_path: Path) -> None:
    def bad(body: dict) -> bool:  # the describe job of the left/right seeds always fails
        text = last_user_text(body)
        return "Describe what the whole" in text and "left or to the right" in text

    out = tmp_path / "out"
    with FakeOpenAIServer(fault=fail_always("500", bad)) as srv:
        stats = run_synth(_recipe(tmp_path, srv.base_url), out, backoff_s=0.01)
        failing = [k for k, n in srv.attempts.items() if n > 1]
        assert failing and all(srv.attempts[k] == RETRIES + 1 for k in failing)
        rejected = {r["id"] for r in read_jsonl(out / "rejects.jsonl")}
        assert stats["rejects"]["by_stage"] == {"write": len(rejected)}
        assert stats["records"] == 8 - len(rejected)
        # a resume retries them (the endpoint may have recovered) without duplicating anything
        stats2 = run_synth(_recipe(tmp_path, srv.base_url), out, backoff_s=0.01)
    assert stats2["this_run"]["skipped"] == 8 - len(rejected)
    assert len(read_jsonl(out / "rejects.jsonl")) == len(rejected)
    assert len(read_jsonl(out / "sft.jsonl")) == stats["records"]


def test_a_rerun_is_served_from_the_cache(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeOpenAIServer(latency_s=0.01) as srv:
        first = run_synth(_recipe(tmp_path, srv.base_url), out, backoff_s=0.01)
    sft = (out / "sft.jsonl").read_bytes()
    (out / "sft.jsonl").unlink()  # synthesize the whole dataset again
    with FakeOpenAIServer() as srv2:
        second = run_synth(_recipe(tmp_path, srv2.base_url), out)
    assert srv2.total_requests == 0
    assert second["this_run"]["writer"]["cache_hits"] == _jobs_per_kind(first)
    assert (out / "sft.jsonl").read_bytes() == sft
    assert second["tokens"] == first["tokens"]  # what the dataset cost, paid once


def test_the_key_is_sent_but_never_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeOpenAIServer(api_key=KEY) as srv:
        run_synth(_recipe(tmp_path, srv.base_url), out)
    assert srv.auth_headers == {f"Bearer {KEY}"}
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_a_refused_request_is_not_retried(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "wrong-key")
    with FakeOpenAIServer(api_key=KEY) as srv:
        cfg = WriterConfig(**_writer(srv.base_url))
        writer = LLMWriter(cfg, ResponseCache(tmp_path / "cache"), backoff_s=0.01)
        request = {"model": "fake-4o", "messages": [{"role": "user", "content": "hi"}]}

        async def go() -> None:
            try:
                await writer.complete(request)
            finally:
                await writer.aclose()

        with pytest.raises(WriterError, match="refused the request"):
            asyncio.run(go())
    assert writer.stats.requests == 1 and writer.stats.retries == 0
    assert ResponseCache(tmp_path / "cache").get(request_key(request)) is None


def test_missing_key_names_the_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    cfg = WriterConfig(**_writer("http://127.0.0.1:9/v1"))
    with pytest.raises(WriterError, match=KEY_ENV):
        LLMWriter(cfg, ResponseCache(tmp_path))


def test_killed_llm_run_resumes_to_the_same_dataset(tmp_path: Path) -> None:
    fault = fail_first(1, "429")
    with FakeOpenAIServer(latency_s=0.01, fault=fault) as srv:
        run_synth(_recipe(tmp_path / "a", srv.base_url), tmp_path / "a" / "out", backoff_s=0.01)
        recipe = _recipe(tmp_path / "b", srv.base_url)
        with pytest.raises(Killed):
            run_synth(recipe, tmp_path / "b" / "out", on_progress=_kill_after(4), backoff_s=0.01)
        run_synth(recipe, tmp_path / "b" / "out", backoff_s=0.01)
    assert _files(tmp_path / "a" / "out") == _files(tmp_path / "b" / "out")


@pytest.mark.slow
def test_sigkilled_cli_run_resumes_to_the_same_dataset(tmp_path: Path) -> None:
    """A real kill (SIGKILL of `pixelctl synth` mid-run), then `--resume`: same files."""

    def recipe_file(root: Path, url: str) -> Path:
        raw = {
            "executor": {"box_mode": "strict", "bounds": {"train": SMALL_BOUNDS}},
            "synth": {
                "procedural": {"n_train": 16, "n_eval": 2, "canvas_min": 384, "canvas_max": 512},
                "n_pixel_space": 12,
                "n_text_only": 4,
                "self_correction_ratio": 0.5,
                "writer": _writer(url, concurrency=2),
            },
            "launch": {"runs_root": str(root / "runs"), "device": "cpu"},
        }
        root.mkdir(parents=True, exist_ok=True)
        path = root / "r.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    cli = [str(Path(sys.executable).parent / "pixelctl"), "synth"]
    env = {**os.environ, KEY_ENV: KEY}
    with FakeOpenAIServer(latency_s=0.15) as srv:
        full = tmp_path / "full"
        subprocess.run(
            [*cli, str(recipe_file(full, srv.base_url))],
            env=env,
            check=True,
            capture_output=True,
            cwd=tmp_path,
        )
        killed = tmp_path / "killed"
        proc = subprocess.Popen(
            [*cli, str(recipe_file(killed, srv.base_url))],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sft = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = list((killed / "runs" / "synth").glob("r-2*/sft.jsonl"))
            if found and len(found[0].read_text().splitlines()) >= 4:
                sft = found[0]
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert sft is not None, "the run never got going"
        written = len(read_jsonl(sft))
        assert 4 <= written < 16
        subprocess.run(
            [*cli, "--resume", str(sft.parent)],
            env=env,
            check=True,
            capture_output=True,
            cwd=tmp_path,
        )
    full_out = next((full / "runs" / "synth").glob("r-2*"))
    strip = {"config.yaml", "command.sh", "meta.json", "metrics.jsonl", "plan.txt"}
    a = {k: v for k, v in _files(full_out).items() if k not in strip}
    b = {k: v for k, v in _files(sft.parent).items() if k not in strip}
    assert a == b
    assert json.loads((sft.parent / "meta.json").read_text())["status"] == "ok"
