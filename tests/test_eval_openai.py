"""The `openai` backend against a real loopback HTTP server: multi-turn, images, retries."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from pixelctl.agent import Sampling
from pixelctl.backends import BackendSpec
from pixelctl.backends.openai_backend import OpenAIGenerator, to_openai_messages
from pixelctl.evaluation.loaders import load_source
from pixelctl.evaluation.runner import run_eval
from pixelctl.prompt import format_tool_call
from tests.helpers import eval_fixtures as fx
from tests.helpers.fake_openai_server import fail_first
from tests.helpers.fake_vlm_server import ModelReply, scripted, serve
from tests.test_eval_runner import SETTINGS

CROP = format_tool_call(
    "crop_image_normalized", {"bbox_2d": [0.1, 0.1, 0.5, 0.5], "target_image": 1}
)


def _decode(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_messages_carry_lossless_images_and_text() -> None:
    img = Image.new("RGB", (56, 84), (1, 2, 3))
    conv = [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {
            "role": "user",
            "content": [{"type": "image", "image": img}, {"type": "text", "text": "q"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
        {"role": "user", "content": [{"type": "video", "video": [img, img]}]},
    ]
    out = to_openai_messages(conv)
    assert out[0] == {"role": "system", "content": "sys"}
    assert out[2] == {"role": "assistant", "content": "a"}
    sent = _decode(out[1]["content"][0]["image_url"]["url"])
    assert sent.size == (56, 84) and sent.getpixel((0, 0)) == (1, 2, 3)
    video = out[3]["content"][0]["video_url"]["url"]
    assert video.startswith("data:video/jpeg;base64,") and video.count(",") == 2


def test_multi_turn_eval_through_the_server(tmp_path: Path, monkeypatch) -> None:
    queries = load_source("vstar", fx.vstar(tmp_path / "vstar"), "official")
    monkeypatch.setenv("PIXELCTL_TEST_KEY", "sk-test")
    bodies, script = [], scripted([CROP, "\\boxed{B}"])

    def reply(body):
        bodies.append(body)
        return script(body)

    with serve(reply, api_key="sk-test", fault=fail_first(1, "429")) as srv:
        spec = BackendSpec(kind="openai", base_url=srv.base_url, model_name="tiny",
                           api_key_env="PIXELCTL_TEST_KEY", concurrency=2)  # fmt: skip
        records = run_eval(queries, tmp_path / "run", SETTINGS, backend=spec)
    assert [r["official"] for r in records] == [1.0, 0.0]  # golds B and A
    assert all(r["n_calls"] == 1 and r["calls"][0]["ok"] for r in records)
    assert srv.outcomes["429"] == 4 and srv.outcomes["ok"] == 4  # every request retried once
    second = [b for b in bodies if len(b["messages"]) == 4]
    second.sort(key=lambda b: "color of the bag" not in json.dumps(b["messages"][1]))  # vstar-0
    assert len(second) == 2 and second[0]["temperature"] == 0.0 and second[0]["max_tokens"] == 32
    assert second[0]["messages"][2] == {"role": "assistant", "content": CROP}
    crop = _decode(second[0]["messages"][3]["content"][1]["image_url"]["url"])
    on_disk = Image.open(tmp_path / "run" / records[0]["crops"][0])
    assert crop.size == on_disk.size and crop.tobytes() == on_disk.convert(crop.mode).tobytes()


def test_concurrent_requests_keep_their_order() -> None:
    def reply(body):
        return body["messages"][-1]["content"][-1]["text"].upper()

    convs = [[{"role": "user", "content": [{"type": "text", "text": f"q{i}"}]}] for i in range(6)]
    with serve(reply, latency_s=0.05) as srv:
        gen = OpenAIGenerator(srv.base_url, "tiny", concurrency=3)
        out = gen(convs, [Sampling(0.0, 1.0, 8)] * 6)
    assert [g.text for g in out] == [f"Q{i}" for i in range(6)]
    assert all(g.prompt_tokens > 0 and g.completion_tokens > 0 for g in out)


@pytest.mark.slow
def test_tiny_model_behind_the_server_matches_hf(tiny_model_dir: Path, tmp_path: Path) -> None:
    """All four benchmarks through HTTP; image items give the same greedy turns as direct hf
    (video frames travel as JPEG, so MVBench is checked for completion only)."""
    from pixelctl.backends.hf import HFGenerator

    queries = []
    for name in ("vstar", "tallyqa", "infovqa", "mvbench"):
        queries += load_source(name, getattr(fx, name)(tmp_path / name), "official")
    images = [q for q in queries if not q.is_video]
    hf = HFGenerator(str(tiny_model_dir), batch_size=1)
    settings = dataclasses.replace(SETTINGS, chunk_size=1, max_new_tokens=12)
    direct = run_eval(images, tmp_path / "hf", settings, generate=hf)
    with serve(ModelReply(hf)) as srv:
        spec = BackendSpec(kind="openai", base_url=srv.base_url, model_name="tiny")
        served = run_eval(queries, tmp_path / "openai", settings, backend=spec)
    assert [r["qid"] for r in served] == [q.qid for q in queries]
    same = [r for r in served if not r["is_video"]]
    assert [r["response"] for r in same] == [r["response"] for r in direct]
    assert [r["official"] for r in same] == [r["official"] for r in direct]
    videos = [r for r in served if r["is_video"]]
    assert len(videos) == 4 and all(r["completion_tokens"] > 0 and not r["error"] for r in videos)
