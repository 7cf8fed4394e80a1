"""Text-only trajectories rejection-sampled from a model (`synth.text_only.source: model`).

The real pipeline, the real `openai` backend and client, over a loopback HTTP server. The
server's replies are scripted by each request's sample seed (the fake stands in for a model
only: what reaches it — the no-tool prompt, the images, one seed per sample — is the real
request), so pass rates, the kept sample and the rejects are exact. A slow test serves the tiny
Qwen2.5-VL behind the same server instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pixelctl.synth.text_sampler as ts
from pixelctl.agent import Sampling
from pixelctl.backends.openai_backend import OpenAIGenerator
from pixelctl.config import RecipeError, load_recipe
from pixelctl.prompt import GUIDELINE_NOTOOL, SYSTEM_PROMPT_BASE, system_message
from pixelctl.synth.pipeline import load_seeds, run_synth
from pixelctl.synth.plan import make_plan
from pixelctl.synth.text_sampler import PASS_RATES, sample_seed
from tests.helpers.fake_openai_server import FakeOpenAIServer, last_user_text
from tests.test_synth_support import read_jsonl, small_recipe

K = 4
# per text-only query (in plan order): which of its k samples answer correctly
CORRECT = [{0, 1, 2, 3}, {2}, set(), {1, 3}]


def _recipe(root: Path, url: str, **text_only):
    synth = {
        "n_pixel_space": 2,
        "n_text_only": 4,
        "text_only": {
            "source": "model",
            "backend": "openai",
            "base_url": url,
            "model": "scripted-base",
            "k": K,
            "temperature": 0.9,
            "queries_per_call": 2,
            **text_only,
        },
    }
    return small_recipe(root, synth=synth)


def _text_only_seeds(recipe, out: Path) -> list:
    seeds, _ = load_seeds(recipe, out)
    s = recipe.synth
    plan = make_plan(seeds, s.n_pixel_space, s.n_text_only, s.self_correction_ratio, s.seed)
    return [a.seed for a in plan.assignments if a.kind == "text_only"]


class Script:
    """Replies by sample seed: sample j of query i is right when j is in CORRECT[i]."""

    def __init__(self, seeds: list) -> None:
        self.by_seed = {
            sample_seed(0, seed.id, j): (i, j, seed)
            for i, seed in enumerate(seeds)
            for j in range(K)
        }
        self.bodies: list[dict] = []

    def text(self, i: int, j: int, seed) -> str:
        if j in CORRECT[i]:
            return f"Sample {j}: the panel reads clearly. \\boxed{{{seed.answer}}}"
        wrong = next(o for o in seed.options if o != seed.answer)
        return f"Sample {j}: I think it is \\boxed{{{wrong}}}"

    def __call__(self, body: dict) -> str:
        self.bodies.append(body)
        return self.text(*self.by_seed[body["seed"]])


@pytest.fixture()
def scripted(tmp_path: Path):
    probe = _recipe(tmp_path, "http://unused")
    seeds = _text_only_seeds(probe, tmp_path / "probe")
    assert len(seeds) == 4
    script = Script(seeds)
    with FakeOpenAIServer(reply=script) as srv:
        yield srv, script, seeds


def _run(root: Path, url: str, out: Path, **kw) -> dict:
    return run_synth(_recipe(root, url, **kw), out)


def test_pass_rates_kept_samples_and_rejects_are_exact(tmp_path: Path, scripted) -> None:
    srv, script, seeds = scripted
    out = tmp_path / "out"
    stats = _run(tmp_path, srv.base_url, out)

    rows = read_jsonl(out / PASS_RATES)
    assert [(r["id"], r["k"], r["correct"], r["pass_rate"], r["kept"]) for r in rows] == [
        (seeds[0].id, 4, 4, 1.0, 0),
        (seeds[1].id, 4, 1, 0.25, 2),
        (seeds[2].id, 4, 0, 0.0, None),
        (seeds[3].id, 4, 2, 0.5, 1),
    ]
    assert rows[1]["scores"] == [0.0, 0.0, 1.0, 0.0]

    recs = {r["id"]: r for r in read_jsonl(out / "sft.jsonl") if r["kind"] == "text_only"}
    assert sorted(recs) == sorted([seeds[0].id, seeds[1].id, seeds[3].id])
    for i, j in ((0, 0), (1, 2), (3, 1)):
        r = recs[seeds[i].id]
        msgs = r["message_list"]
        assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
        # the model's answer, verbatim; the record keeps the recipe's (tool) prompt, as templates
        assert msgs[-1]["content"] == [{"type": "text", "text": script.text(i, j, seeds[i])}]
        assert msgs[0]["content"][0]["text"] == system_message(tools=True)
        assert r["image"] == [msgs[1]["content"][0]["image"]]
        assert (out / r["image"][0]).is_file()
        assert r["sampled"] == {
            "model": "scripted-base",
            "k": 4,
            "correct": len(CORRECT[i]),
            "kept": j,
        }
    rejects = [r for r in read_jsonl(out / "rejects.jsonl") if r["id"] == seeds[2].id]
    assert [(r["stage"], r["reason"]) for r in rejects] == [
        ("sample", "no correct answer in k=4 samples (pass rate 0)")
    ]
    assert stats["by_kind"]["text_only"] == 3
    assert stats["rejects"]["by_stage"] == {"sample": 1}
    assert stats["text_only_sampling"] == {
        "queries": 4,
        "samples": 16,
        "correct": 7,
        "pass_rate": 0.4375,
        "mean_pass_rate_per_query": 0.4375,
        "kept": 3,
        "none_correct": 1,
        "correct_histogram": {"0": 1, "1": 1, "2": 1, "4": 1},
    }
    assert stats["this_run"]["text_only_sampler"] == {
        "sampled_queries": 4,
        "cached_queries": 0,
        "calls": 2,
        "samples": 16,
    }


def test_requests_use_the_no_tool_prompt_and_one_seed_per_sample(tmp_path: Path, scripted) -> None:
    srv, script, seeds = scripted
    _run(tmp_path, srv.base_url, tmp_path / "out")
    assert srv.total_requests == 16 == len(script.bodies)
    assert len({b["seed"] for b in script.bodies}) == 16  # no two samples share a seed
    for b in script.bodies:
        assert b["model"] == "scripted-base"
        assert (b["temperature"], b["top_p"], b["max_tokens"]) == (0.9, 0.95, 1024)
        assert b["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT_BASE}  # no tools
        user = b["messages"][1]["content"]
        assert user[0]["type"] == "image_url"
        assert user[0]["image_url"]["url"].startswith("data:image/png;base64,")
        assert last_user_text(b).endswith(GUIDELINE_NOTOOL)
    questions = {last_user_text(b).split("\n\n")[0] for b in script.bodies}
    assert questions == {s.question for s in seeds}


def test_a_rerun_samples_nothing_and_writes_the_same_files(tmp_path: Path, scripted) -> None:
    srv, _, _ = scripted
    out = tmp_path / "out"
    _run(tmp_path, srv.base_url, out)
    first = {p: (out / p).read_bytes() for p in ("sft.jsonl", PASS_RATES, "rejects.jsonl")}
    stats = _run(tmp_path, srv.base_url, out)
    assert srv.total_requests == 16
    assert {p: (out / p).read_bytes() for p in first} == first
    assert stats["this_run"]["text_only_sampler"]["sampled_queries"] == 0
    assert stats["this_run"]["text_only_sampler"]["cached_queries"] == 1  # the rejected one


def test_a_changed_sampling_setting_samples_again(tmp_path: Path, scripted) -> None:
    srv, _, _ = scripted
    out = tmp_path / "out"
    _run(tmp_path, srv.base_url, out)
    # the grader is not part of the key: regrading reuses the answers
    _run(tmp_path, srv.base_url, out, grader="paper_compat")
    assert srv.total_requests == 16
    _run(tmp_path, srv.base_url, tmp_path / "out2", temperature=0.5)
    assert srv.total_requests == 32


class Killed(BaseException):
    pass


def test_a_run_killed_between_calls_resumes_without_resampling(
    tmp_path: Path, scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, _, _ = scripted
    ref = tmp_path / "ref"
    _run(tmp_path, srv.base_url, ref)
    assert srv.total_requests == 16

    real, calls = ts.run_batch, []

    def dies_on_the_second_call(rollouts, generate):
        calls.append(len(rollouts))
        if len(calls) == 2:
            raise Killed
        return real(rollouts, generate)

    monkeypatch.setattr(ts, "run_batch", dies_on_the_second_call)
    out = tmp_path / "out"
    with pytest.raises(Killed):
        _run(tmp_path, srv.base_url, out)
    assert calls == [8, 8] and srv.total_requests == 16 + 8
    monkeypatch.setattr(ts, "run_batch", real)
    stats = _run(tmp_path, srv.base_url, out)
    assert srv.total_requests == 16 + 16  # the second call's two queries only
    assert stats["this_run"]["text_only_sampler"]["cached_queries"] == 2
    for name in ("sft.jsonl", PASS_RATES, "rl.jsonl"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def test_a_backend_failure_names_the_resume(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(OpenAIGenerator, "__init__", _no_retries(OpenAIGenerator.__init__))
    expected = pytest.raises(ts.SamplingError, match=r"0 queries sampled before it are cached")
    with FakeOpenAIServer(fault=lambda body, attempt: "500") as srv, expected:
        _run(tmp_path, srv.base_url, tmp_path / "out")


def _no_retries(init):
    def wrapped(self, *a, **kw):
        init(self, *a, **{**kw, "max_retries": 0})

    return wrapped


def test_sample_seeds_are_distinct_and_stable() -> None:
    seeds = [sample_seed(0, "q-1", j) for j in range(64)]
    assert len(set(seeds)) == 64 and seeds == [sample_seed(0, "q-1", j) for j in range(64)]
    assert sample_seed(1, "q-1", 0) != sample_seed(0, "q-1", 0)
    assert all(0 <= s < 2**31 for s in seeds)


def test_a_sample_seed_reaches_the_request_but_not_batch_grouping() -> None:
    a, b = Sampling(0.9, 0.95, 16, seed=1), Sampling(0.9, 0.95, 16, seed=2)
    assert a == b and hash(a) == hash(b)  # hf batches them together
    gen = OpenAIGenerator("http://127.0.0.1:1/v1", "m", seed=0)
    msgs = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert gen.request(msgs, a)["seed"] == 1
    assert gen.request(msgs, Sampling(0.9))["seed"] == 0
    assert gen.request(msgs, Sampling(0.0, seed=5))["seed"] == 0  # greedy keeps the backend's


def test_schema_defaults_to_templates_and_refuses_greedy_sampling(tmp_path: Path) -> None:
    r = load_recipe(None, [], raw={}).recipe
    assert r.synth.text_only.source == "template"
    with pytest.raises(RecipeError, match="temperature"):
        load_recipe(None, [], raw={"synth": {"text_only": {"source": "model", "temperature": 0}}})


def test_template_runs_write_no_pass_rates(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stats = run_synth(small_recipe(tmp_path, synth={"n_pixel_space": 1, "n_text_only": 1}), out)
    assert not (out / PASS_RATES).exists() and "text_only_sampling" not in stats
    assert stats["by_kind"] == {"single_pass": 1, "text_only": 1}


def test_dry_run_plan_names_the_sampler(tmp_path: Path) -> None:
    from pixelctl.stages import synth as stage

    raw = {
        "synth": {
            "n_pixel_space": 0,
            "text_only": {"source": "model", "backend": "openai", "model": "base", "k": 8},
        }
    }
    text = stage.plan(load_recipe(None, [], raw=raw))
    assert (
        "text-only: rejection-sampled from base at http://127.0.0.1:8000/v1, key from "
        "$OPENAI_API_KEY (openai), k=8 no-tool answers per query at temperature 1.0, graded "
        "'exact', the first correct kept; pass rates in text_only_pass_rates.jsonl"
    ) in text


@pytest.mark.slow
def test_the_tiny_model_behind_the_openai_backend(tmp_path: Path, tiny_model_dir: Path) -> None:
    """End to end: the tiny Qwen2.5-VL answers over HTTP; pass rates are the graders' verdicts
    on exactly the texts it sent, and a re-run asks it nothing."""
    from pixelctl.backends.hf import HFGenerator
    from tests.helpers.fake_vlm_server import ModelReply

    model = ModelReply(HFGenerator(str(tiny_model_dir), seed=0))
    sent: dict[int, str] = {}

    def reply(body: dict) -> str:
        sent[body["seed"]] = text = model(body)
        return text

    with FakeOpenAIServer(reply=reply) as srv:
        recipe = _recipe(tmp_path, srv.base_url, k=2, max_new_tokens=12)
        recipe.synth.n_text_only = 2
        out = tmp_path / "out"
        stats = run_synth(recipe, out)
        seeds = _text_only_seeds(recipe, tmp_path / "probe")
        assert srv.total_requests == 4
        rows = read_jsonl(out / PASS_RATES)
        assert [r["id"] for r in rows] == [s.id for s in seeds]
        written = {r["id"]: r for r in read_jsonl(out / "sft.jsonl") if r["kind"] == "text_only"}
        for seed, row in zip(seeds, rows, strict=True):
            texts = [sent[sample_seed(0, seed.id, j)].replace("<|im_end|>", "") for j in range(2)]
            scores = [ts.grade(seed, t, "exact") for t in texts]
            assert row["scores"] == scores and row["correct"] == sum(scores)
            if 1.0 in scores:
                final = written[seed.id]["message_list"][-1]["content"][0]["text"]
                assert final == texts[scores.index(1.0)]
            else:
                assert seed.id not in written
        assert stats["text_only_sampling"]["samples"] == 4
        run_synth(recipe, out)
        assert srv.total_requests == 4
        cache = out / "cache" / "text_only" / "responses.jsonl"
        assert len(cache.read_text().splitlines()) == 2
        assert json.loads(cache.read_text().splitlines()[0])["output_tokens"] > 0
