"""The run viewer: run dirs of every stage in their real formats → one static HTML page.

The fixtures write what the stages write (rundir meta.json/config.yaml/metrics.jsonl, RL
`samples/round-*.jsonl`, eval `samples.jsonl` + `metrics.json`, SFT `records.jsonl`, synth
`sft.jsonl` + `stats.json`) with tiny PNGs; the tests read the page back with html.parser.
"""

from __future__ import annotations

import json
import math
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pixelctl.viewer import write_report
from pixelctl.viewer.assets import BOX_OK
from pixelctl.viewer.svg import svg_line_chart
from pixelctl.viewer.trajectory import Call, is_normalized, normalized_box, resolve_target

CALL = '<tool_call>\n{{"name": "crop_image_normalized", "arguments": {args}}}\n</tool_call>'


# ------------------------------------------------------------------------------ page parsing
class Elements(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.tags
            if t == tag and (cls is None or cls in a.get("class", "").split())
        ]


def articles(html: str) -> list[str]:
    """The HTML of each trajectory, in page order."""
    return re.findall(r'<article class="traj.*?</article>', html, flags=re.S)


def path_points(d: str) -> int:
    return len(re.findall(r"[ML]-?[\d.]+ -?[\d.]+", d))


# ------------------------------------------------------------------------------ fixtures
def png(path: Path, size: tuple[int, int], colour=(40, 90, 160)) -> Path:
    """A PNG with a diagonal gradient (never a single colour) tinted by `colour`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    im = Image.new("RGB", size)
    im.putdata(
        [
            ((colour[0] + x) % 256, (colour[1] + y) % 256, colour[2])
            for y in range(h)
            for x in range(w)
        ]
    )
    im.save(path)
    return path


def jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def stage_dir(root: Path, stage: str, config: dict) -> Path:
    root.mkdir(parents=True)
    (root / "meta.json").write_text(
        json.dumps({"stage": stage, "status": "ok", "pixelctl": "0.1.0"})
    )
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def sys_msg() -> dict:
    return {"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]}


def text(role: str, t: str) -> dict:
    return {"role": role, "content": [{"type": "text", "text": t}]}


def obs(name: str, size: tuple[int, int]) -> dict:
    t = f"\nHere is the cropped image (Image Size: {size[0]}x{size[1]}):"
    return {
        "role": "user",
        "content": [{"type": "text", "text": t}, {"type": "image", "image": name}],
    }


def make_rl(root: Path, data: Path) -> Path:
    """Round 1 of a 4-rollout group: rollout 1 crops the input, then crops its crop by pixels."""
    run = stage_dir(
        root,
        "rl",
        {
            "executor": {"box_mode": "compat"},
            "rl": {"reward": {"mode": "paper", "alpha": 0.5, "beta": 0.05, "H": 0.3, "N": 1}},
        },
    )
    metrics = [
        {"step": s, "round": 1, "accuracy": 0.1 * s, "rapr": 0.5, "loss": 1.0 / s}
        for s in (1, 2, 3, 4)
    ]
    metrics.append({"event": "resume", "from_round": 1, "from_step": 2})
    metrics += [
        {"step": s, "round": 2, "accuracy": 0.9, "rapr": 0.25, "loss": 0.5} for s in (3, 4, 5)
    ]
    jsonl(run / "metrics.jsonl", metrics)
    img = run / "samples" / "img"
    original = png(data / "photo.png", (400, 200))
    png(img / "r00001-0-0.png", (112, 56))  # the executor's fitted copy of the input
    png(img / "r00001-0-1.png", (84, 84), (200, 30, 30))
    png(img / "r00001-0-2.png", (56, 56), (30, 200, 30))
    first = {
        "role": "user",
        "content": [
            {"type": "image", "image": "r00001-0-0.png"},
            {"type": "text", "text": "What is on the sign?"},
        ],
    }
    msgs = [
        sys_msg(),
        first,
        text(
            "assistant",
            "Zoom. " + CALL.format(args='{"bbox_2d": [0.5, 0.0, 0.75, 0.5], "target_image": 1}'),
        ),
        obs("r00001-0-1.png", (84, 84)),
        text(
            "assistant",
            "Closer. " + CALL.format(args='{"bbox_2d": [10, 10, 50, 50], "target_image": 2}'),
        ),
        obs("r00001-0-2.png", (56, 56)),
        text("assistant", "It says <script>alert(1)</script> \\boxed{OPEN}\x0c"),
    ]
    calls = [
        {
            "turn": 1,
            "name": "crop_image_normalized",
            "arguments": {"bbox_2d": [0.5, 0.0, 0.75, 0.5], "target_image": 1},
            "executed": True,
            "ok": True,
            "error": None,
            "n_images": 1,
            "crop_box": [45, 0, 95, 34],
            "target": 1,
        },
        {
            "turn": 2,
            "name": "crop_image_normalized",
            "arguments": {"bbox_2d": [10, 10, 50, 50], "target_image": 2},
            "executed": True,
            "ok": True,
            "error": None,
            "n_images": 1,
            "crop_box": [21, 0, 84, 63],
            "target": 2,
        },
    ]
    rows = [
        {
            "round": 1,
            "qid": "q-1",
            "question": "What is on the sign?",
            "answer": "OPEN",
            "inputs": [str(original)],
            "messages": msgs,
            "calls": calls,
            "stop_reason": "answer",
            "correct": 1.0,
            "reward": 0.975,
            "advantage": 0.475,
            "completion_tokens": 30,
        }
    ]
    plain = [sys_msg(), first, text("assistant", "\\boxed{OPEN}")]
    for k, (correct, reward, adv) in enumerate(
        [(1.0, 1.0, 0.5), (0.0, 0.0, -0.5), (-1.0, 0.0, -0.5)], start=1
    ):
        png(img / f"r00001-{k}-0.png", (112, 56))
        m = json.loads(json.dumps(plain).replace("r00001-0-0", f"r00001-{k}-0"))
        rows.append(
            {
                "round": 1,
                "qid": "q-1",
                "inputs": [str(original)],
                "messages": m,
                "calls": [],
                "stop_reason": "answer",
                "correct": correct,
                "reward": reward,
                "advantage": adv,
                "completion_tokens": 5,
            }
        )
    jsonl(run / "samples" / "round-00001.jsonl", rows)
    return run


def eval_record(qid: str, official: float, data: Path, **kw) -> dict:
    first = {
        "role": "user",
        "content": [
            {"type": "image", "image": str(data / f"{qid}.png")},
            {"type": "text", "text": "Which colour?"},
        ],
    }
    rec = {
        "qid": qid,
        "benchmark": "vstar",
        "category": "direct_attributes",
        "question": "Which colour?",
        "answer": "B",
        "options": ["red", "blue"],
        "is_video": False,
        "images": [str(data / f"{qid}.png")],
        "messages": [sys_msg(), first, text("assistant", "\\boxed{B}")],
        "calls": [],
        "crops": [],
        "n_calls": 0,
        "stop_reason": "answer",
        "extracted": "B",
        "metric": "accuracy",
        "official": official,
        "paper_compat": official,
        "error": None,
    }
    rec.update(kw)
    return rec


def make_eval(root: Path, data: Path) -> Path:
    """Dataset order: correct (with a crop), wrong, error; the page must reverse that."""
    bounds = {"image_min_pixels": 3136, "image_max_pixels": 50176}
    run = stage_dir(root, "eval", {"executor": {"box_mode": "strict", "bounds": {"eval": bounds}}})
    for q in ("vstar-0", "vstar-1"):
        png(data / f"{q}.png", (224, 168))
    png(run / "crops" / "vstar" / "vstar-0" / "01.png", (112, 112))
    good = eval_record(
        "vstar-0",
        1.0,
        data,
        calls=[
            {
                "turn": 1,
                "name": "crop_image_normalized",
                "arguments": {"bbox_2d": [0.1, 0.1, 0.4, 0.4], "target_image": 1},
                "ok": True,
                "error": None,
                "crop_box": [0, 0, 112, 84],
            }
        ],
        crops=["crops/vstar/vstar-0/01.png"],
        n_calls=1,
    )
    good["messages"] = [
        *good["messages"][:2],
        text("assistant", CALL.format(args='{"bbox_2d": [0.1, 0.1, 0.4, 0.4], "target_image": 1}')),
        obs("crops/vstar/vstar-0/01.png", (112, 112)),
        text("assistant", "\\boxed{B}"),
    ]
    wrong = eval_record("vstar-1", 0.0, data, extracted="A")
    broken = eval_record(
        "vstar-2", 0.0, data, messages=[], error="An input image could not be used: missing"
    )
    jsonl(run / "samples.jsonl", [good, wrong, broken])
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "vstar": {
                    "metric": "accuracy",
                    "accuracy": 33.33,
                    "paper_compat": 33.33,
                    "n": 3,
                    "tool_use_rate": 33.33,
                    "calls_mean": 0.333,
                    "no_answer": 0,
                    "errors": 1,
                }
            }
        )
    )
    return run


def make_sft(root: Path, data: Path) -> Path:
    run = stage_dir(root, "sft", {"sft": {"mask": "last_two_assistant"}})
    jsonl(run / "metrics.jsonl", [{"step": s, "loss": 2.0 / s, "lr": 1e-6} for s in (1, 2, 3)])
    pic = png(data / "sft.png", (120, 80))
    messages = [
        sys_msg(),
        {
            "role": "user",
            "content": [{"type": "image", "image": str(pic)}, {"type": "text", "text": "Q?"}],
        },
        text("assistant", "a1"),
        text("user", "\nExecution error:\nbad\n"),
        text("assistant", "a2"),
        text("user", "more"),
        text("assistant", "\\boxed{1}"),
    ]
    record = {
        "id": "s-1",
        "source": "f.jsonl:1",
        "messages": messages,
        "error_turns": [2],
        "kind": "self_correction",
    }
    jsonl(
        run / "records.jsonl",
        [{"images": [str(pic)], "record": json.dumps(record), "sizes": [[120, 80]]}],
    )
    return run


def make_synth(root: Path) -> Path:
    run = stage_dir(root, "synth", {"executor": {"box_mode": "strict"}})
    png(run / "images" / "p-1" / "input.png", (300, 200))
    png(run / "images" / "p-1" / "op1-0.png", (84, 56), (10, 200, 200))
    msgs = [
        sys_msg(),
        {
            "role": "user",
            "content": [
                {"type": "image", "image": "images/p-1/input.png"},
                {"type": "text", "text": "Digit?"},
            ],
        },
        text(
            "assistant",
            "Look. " + CALL.format(args='{"bbox_2d": [0.25, 0.25, 0.5, 0.75], "target_image": 1}'),
        ),
        obs("images/p-1/op1-0.png", (84, 56)),
        text("assistant", "\\boxed{7}"),
    ]
    jsonl(
        run / "sft.jsonl",
        [
            {
                "id": "p-1",
                "kind": "single_pass",
                "source": "procedural",
                "message_list": msgs,
                "error_turns": [],
                "answer": "7",
                "operations": 1,
            }
        ],
    )
    (run / "stats.json").write_text(
        json.dumps(
            {
                "records": 1,
                "by_kind": {"single_pass": 1},
                "operations_per_trajectory": {"mean": 1.0, "histogram": {"1": 1}},
                "rejects": {"total": 0, "by_reason": {}},
            }
        )
    )
    return run


def make_demo(root: Path) -> Path:
    """The demo layout: `demo/meta.json` (stage demo), `summary.json`, and `<stage>/<run>/`
    sub-folders with `<recipe>-latest` links beside them (a run must not show twice)."""
    data, demo = root / "data", root / "demo"
    demo.mkdir(parents=True)
    (demo / "meta.json").write_text(json.dumps({"stage": "demo", "status": "ok"}))
    stages = [{"stage": "untrained", "accuracy": 0.0}, {"stage": "after rl", "accuracy": 50.0}]
    (demo / "summary.json").write_text(json.dumps({"size": "small", "stages": stages}))
    make_eval(demo / "eval" / "tiny-20260101-000300-after-rl", data)
    make_rl(demo / "rl" / "tiny-20260101-000200", data)
    make_synth(demo / "synth" / "tiny-20260101-000000")
    make_sft(demo / "sft" / "tiny-20260101-000100", data)
    for stage in ("eval", "rl", "synth", "sft"):
        run = next((demo / stage).iterdir())
        (demo / stage / "tiny-latest").symlink_to(run.name)
    return demo


@pytest.fixture
def demo_page(tmp_path: Path) -> tuple[Path, str]:
    index = write_report(make_demo(tmp_path))
    return index, index.read_text()


# ------------------------------------------------------------------------------ svg charts
def test_chart_has_one_path_per_series_with_every_finite_point():
    svg = svg_line_chart(
        {"acc": [(1, 0.1), (2, math.nan), (3, 0.3), (4, None)], "loss": [(1, 2.0), (2, 1.0)]},
        title="t",
    )
    paths = Elements(svg).find("path", "series")
    assert [p["data-series"] for p in paths] == ["acc", "loss"]
    assert [path_points(p["d"]) for p in paths] == [2, 2]
    assert [p["data-points"] for p in paths] == ["2", "2"]


def test_chart_scales_points_into_the_plot_area():
    svg = svg_line_chart({"y": [(0, 0.0), (10, 1.0)]}, width=420, height=220)
    d = Elements(svg).find("path", "series")[0]["d"]
    # plot box: x 56..408, y 24..186; the first point is bottom-left, the last top-right
    assert d == "M56.0 186.0 L408.0 24.0"


def test_chart_flat_series_draws_mid_height_and_empty_chart_says_so():
    d = Elements(svg_line_chart({"y": [(1, 5.0), (2, 5.0)]})).find("path", "series")[0]["d"]
    assert d == "M56.0 105.0 L408.0 105.0"
    empty = svg_line_chart({"y": [(1, math.inf)]}, title="x")
    assert "no data" in empty and "<path" not in empty


def test_chart_escapes_names():
    svg = svg_line_chart({"<b>": [(1, 1.0)]}, title="a<b>&")
    assert "<b>" not in svg and "a&lt;b&gt;&amp;" in svg


@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none()), max_size=40))
def test_chart_points_property(ys):
    svg = svg_line_chart({"s": list(enumerate(ys))})
    finite = sum(y is not None and math.isfinite(y) for y in ys)
    paths = Elements(svg).find("path", "series")
    assert (path_points(paths[0]["d"]) if paths else 0) == finite


# ------------------------------------------------------------------------------ box geometry
@pytest.mark.parametrize(
    ("target", "n_inputs", "n_returned", "video", "mode", "expected"),
    [
        (1, 1, 0, False, "strict", ("input", 0)),
        (2, 1, 1, False, "compat", ("returned", 0)),
        (3, 1, 1, False, "compat", None),
        (0, 1, 0, False, "strict", None),
        (True, 1, 0, False, "strict", None),
        (5, 16, 2, True, "strict", ("input", 4)),  # strict video: frames 1..16 stay frames
        (17, 16, 2, True, "strict", ("returned", 0)),
        (2, 16, 2, True, "compat", ("returned", 1)),  # compat video: only returned once any exist
        (5, 16, 0, True, "compat", ("input", 4)),
    ],
)
def test_resolve_target_follows_the_executor_numbering(
    target, n_inputs, n_returned, video, mode, expected
):
    assert resolve_target(target, n_inputs, n_returned, is_video=video, mode=mode) == expected


def test_box_is_bbox_when_normalized_else_crop_box_over_target_size():
    quadrant = Call(
        "crop_image_normalized", {"bbox_2d": [0.5, 0.5, 1.0, 1.0]}, True, crop_box=[0, 0, 150, 104]
    )
    assert is_normalized([0.5, 0.5, 1.0, 1.0], "strict") and not is_normalized(
        [0.5, 0.5, 1.0, 1.0], "compat"
    )
    assert normalized_box(quadrant, "strict", (1484, 1036)) == (0.5, 0.5, 1.0, 1.0)
    assert normalized_box(quadrant, "compat", (1500, 1040)) == (0.0, 0.0, 0.1, 0.1)
    assert normalized_box(quadrant, "compat", None) is None


# ------------------------------------------------------------------------------ the page
def test_demo_folder_gives_a_section_per_stage_in_pipeline_order(demo_page):
    index, html = demo_page
    assert index.name == "index.html" and index.parent.name == "report"
    sections = Elements(html).find("section", "stage")
    assert [s["data-stage"] for s in sections] == ["demo", "synth", "sft", "rl", "eval"]
    assert len(Elements(html).find("a")) == 5  # the table of contents
    demo = html[: html.index('data-stage="synth"')]
    assert "<caption>summary: stages</caption><tr><th>stage</th><th>accuracy</th></tr>" in demo
    assert "<tr><td>after rl</td><td>50</td></tr>" in demo


def test_folder_of_stage_runs_without_meta(tmp_path):
    make_synth(tmp_path / "runs" / "synth")
    make_rl(tmp_path / "runs" / "rl" / "x-1", tmp_path / "data")
    html = write_report(tmp_path / "runs").read_text()
    assert [s["data-stage"] for s in Elements(html).find("section", "stage")] == ["synth", "rl"]


def test_every_image_is_a_local_asset_and_there_is_no_script(demo_page):
    index, html = demo_page
    imgs = Elements(html).find("img")
    assert imgs
    for img in imgs:
        assert img["src"].startswith("assets/") and (index.parent / img["src"]).is_file()
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_rl_rollout_shows_input_with_box_and_one_img_per_crop(demo_page):
    index, html = demo_page
    rl = html[html.index('data-stage="rl"') : html.index('data-stage="eval"')]
    first = Elements(articles(rl)[0])
    inputs, crops = first.find("img", "input"), first.find("img", "crop")
    assert len(inputs) == 1 and len(crops) == 2
    assert "boxed" in inputs[0]["class"] and inputs[0]["data-boxes"] == "1"
    assert (inputs[0]["width"], inputs[0]["height"]) == (
        "400",
        "200",
    )  # the original, not the fitted copy
    assert crops[0].get("data-boxes") == "1" and "data-boxes" not in crops[1]  # crop of a crop
    with Image.open(index.parent / inputs[0]["src"]) as im:
        assert im.getpixel((200, 50)) == BOX_OK  # left edge of bbox [0.5, 0, 0.75, 0.5]
        assert im.getpixel((300, 150)) != BOX_OK
    with Image.open(index.parent / crops[0]["src"]) as im:  # crop_box [21,0,84,63] of 84x84
        assert im.getpixel((21, 40)) == BOX_OK and im.getpixel((10, 40)) != BOX_OK


def test_rl_reward_split_adds_up_to_the_logged_reward(demo_page):
    _, html = demo_page
    rl = html[html.index('data-stage="rl"') : html.index('data-stage="eval"')]
    table = re.search(r"<caption>reward split</caption>(.*?)</table>", rl, re.S).group(1)
    rows = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table)[1:]]
    assert rows[0] == ["1", "1", "2", "1", "0.025", "-0.05", "0.975", "0.475"]
    assert rows[3][3:7] == ["0", "0", "0", "0"]  # unparsable answer: accuracy 0, no shaping
    assert "RaPR 0.250" in rl


def test_rl_curves_keep_the_last_line_per_step(demo_page):
    _, html = demo_page
    rl = html[html.index('data-stage="rl"') : html.index('data-stage="eval"')]
    paths = {p["data-series"]: p for p in Elements(rl).find("path", "series")}
    assert {"accuracy", "rapr", "loss"} <= set(paths)
    assert path_points(paths["accuracy"]["d"]) == 5  # steps 1..5, 3 and 4 recomputed after resume
    assert "accuracy (last 0.9)" in rl


def test_rl_kl_and_entropy_panels_appear_only_when_logged():
    from pixelctl.viewer.collect import curves
    from pixelctl.viewer.stages import RL_PANELS

    plain = [{"step": s, "loss": 0.1, "accuracy": 0.5} for s in (1, 2)]
    titles = [c.title for c in curves(plain, RL_PANELS)]
    assert not any("KL" in t or "entropy" in t for t in titles)
    with_kl = [{**line, "kl": 0.01 * line["step"]} for line in plain]
    [kl] = [c for c in curves(with_kl, RL_PANELS) if "KL" in c.title]
    assert kl.series == {"kl": [(1, 0.01), (2, 0.02)]}


def test_eval_lists_failures_first_and_tolerates_missing_images(demo_page):
    _, html = demo_page
    ev = html[html.index('data-stage="eval"') :]
    order = re.findall(r'<article class="traj v-(\w+)"', ev)
    assert order == ["error", "wrong", "correct"]
    assert "1 of 3 failed" not in ev and "2 of 3 failed" in ev
    good = Elements(articles(ev)[2])
    assert len(good.find("img", "crop")) == 1 and good.find("img", "input")[0]["data-boxes"] == "1"
    assert "<td>V* Bench</td><td>3</td><td>accuracy</td><td>33.33</td>" in ev


def test_model_text_is_escaped_and_control_characters_dropped(demo_page):
    _, html = demo_page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\x0c" not in html


def test_sft_marks_the_turns_the_loss_trains(demo_page):
    _, html = demo_page
    sft = html[html.index('data-stage="sft"') : html.index('data-stage="rl"')]
    turns = re.findall(r'<div class="turn role-assistant (trained|untrained)', sft)
    assert turns == ["untrained", "trained", "trained"]
    assert [p["data-series"] for p in Elements(sft).find("path", "series")] == ["loss", "lr"]


def test_synth_boxes_come_from_the_tool_call_text(demo_page):
    index, html = demo_page
    synth = html[html.index('data-stage="synth"') : html.index('data-stage="sft"')]
    inputs = Elements(synth).find("img", "input")
    assert len(inputs) == 1 and inputs[0]["data-boxes"] == "1"
    with Image.open(index.parent / inputs[0]["src"]) as im:
        assert im.getpixel((75, 100)) == BOX_OK  # left edge of [0.25, 0.25, 0.5, 0.75] on 300x200
    assert "<td>single_pass</td><td>1</td>" in synth


def test_single_run_dir_and_out_option(tmp_path):
    run = make_synth(tmp_path / "synth-run")
    index = write_report(run, tmp_path / "elsewhere")
    assert index == tmp_path / "elsewhere" / "index.html"
    assert [s["data-stage"] for s in Elements(index.read_text()).find("section", "stage")] == [
        "synth"
    ]


def test_half_written_run_still_renders(tmp_path):
    run = stage_dir(tmp_path / "ev", "eval", {})
    (run / "samples.jsonl").write_text(
        json.dumps(eval_record("vstar-9", 0.0, tmp_path)) + '\n{"qid": '
    )
    html = write_report(run).read_text()
    assert "no metrics.json yet" in html
    assert re.findall(r'<article class="traj v-(\w+)"', html) == ["wrong"]
    assert "image not found:" in html and not Elements(html).find("img")


def test_missing_run_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        write_report(tmp_path / "nope")


@pytest.mark.parametrize(("mode", "boxed"), [("compat", "crop"), ("strict", "frame")])
def test_video_frames_and_the_crop_target_numbering(tmp_path, mode, boxed):
    """After select_frames, `target_image: 1` is the first returned frame in compat mode and
    video frame 1 in strict mode (docs/executor.md); the box lands on that picture."""
    run = stage_dir(tmp_path / "synth", "synth", {"executor": {"box_mode": mode}})
    frames = [f"images/v/f{i}.png" for i in range(4)]
    for i, f in enumerate(frames):
        png(run / f, (96, 64), (20 * i, 50, 100))
    for k in (1, 2):
        png(run / f"images/v/sel{k}.png", (96, 64), (200, 20 * k, 0))
    png(run / "images/v/crop.png", (56, 56))
    select = '<tool_call>\n{"name": "select_frames", "arguments": {"target_frames": [2, 3]}}\n</tool_call>'
    sel_obs = {
        "role": "user",
        "content": [
            {
                "type": "text",
                "text": "\nHere are the selected frames (Frame Size: 96x64, Numbered 1 to 2):",
            },
            {"type": "image", "image": "images/v/sel1.png"},
            {"type": "image", "image": "images/v/sel2.png"},
        ],
    }
    msgs = [
        sys_msg(),
        {
            "role": "user",
            "content": [
                {"type": "video", "video": frames},
                {"type": "text", "text": "What happens?"},
            ],
        },
        text("assistant", select),
        sel_obs,
        text("assistant", CALL.format(args='{"bbox_2d": [0.1, 0.1, 0.6, 0.6], "target_image": 1}')),
        obs("images/v/crop.png", (56, 56)),
        text("assistant", "\\boxed{A}"),
    ]
    jsonl(run / "sft.jsonl", [{"id": "v-1", "kind": "single_pass", "message_list": msgs}])
    page = Elements(write_report(run).read_text())
    assert len(page.find("img", "frame")) == 4 and len(page.find("img", "crop")) == 3
    with_box = [a for a in page.find("img") if a.get("data-boxes")]
    assert len(with_box) == 1 and boxed in with_box[0]["class"]
    assert with_box[0]["alt"] == ("images/v/sel1.png" if mode == "compat" else "images/v/f0.png")


def test_eval_pixel_box_is_scaled_by_the_fitted_input_size(tmp_path):
    """compat, box in pixels: crop_box is in pixels of the input as fitted to the eval bounds
    (560x420 → 252x168 at 64 tokens), not of the original file."""
    bounds = {"image_min_pixels": 3136, "image_max_pixels": 50176}
    run = stage_dir(
        tmp_path / "ev", "eval", {"executor": {"box_mode": "compat", "bounds": {"eval": bounds}}}
    )
    png(tmp_path / "vstar-0.png", (560, 420))
    png(run / "crops/vstar/vstar-0/01.png", (112, 112))
    args = {"bbox_2d": [80, 50, 110, 70], "target_image": 1}
    call = {
        "turn": 1,
        "name": "crop_image_normalized",
        "arguments": args,
        "ok": True,
        "crop_box": [63, 42, 126, 84],
    }
    rec = eval_record("vstar-0", 1.0, tmp_path, calls=[call])
    rec["messages"] = [
        *rec["messages"][:2],
        text("assistant", CALL.format(args=json.dumps(args))),
        obs("crops/vstar/vstar-0/01.png", (112, 112)),
        text("assistant", "\\boxed{B}"),
    ]
    jsonl(run / "samples.jsonl", [rec])
    index = write_report(run)
    img = Elements(index.read_text()).find("img", "input")[0]
    with Image.open(index.parent / img["src"]) as im:
        assert im.size == (560, 420)
        assert im.getpixel((140, 160)) == BOX_OK  # left edge at 63/252 = 0.25 of the width
        assert im.getpixel((280, 160)) != BOX_OK


def test_chart_survives_values_across_the_whole_float_range():
    # found by test_chart_points_property: hi - lo overflowed to inf and the path became nan
    big = sys.float_info.max
    svg = svg_line_chart({"s": [(0, big), (1, -big)]})
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    assert path_points(Elements(svg).find("path", "series")[0]["d"]) == 2
