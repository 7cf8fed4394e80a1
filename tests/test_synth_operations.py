"""Operations of synthesized trajectories, the mix plan, and the procedural scenes."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixelctl.executor.settings import PixelBounds
from pixelctl.synth.operations import (
    MAX_NORM,
    correct_op,
    frames_words,
    outward,
    where_words,
    wrong_op,
)
from pixelctl.synth.plan import make_plan, spread
from pixelctl.synth.procedural import (
    draw_scene,
    eval_records,
    generate_split,
    legibility_report,
    scene_workers,
)
from pixelctl.synth.seeds import Region, Seed

PAD = 0.1


def _seed(box: tuple[float, float, float, float], sid: str = "s", **kw) -> Seed:
    return Seed(
        sid, "image", "Q?", ("A",), image=Path("x.png"), regions=(Region(box, "sign"),), **kw
    )


boxes = st.tuples(
    st.floats(0, 0.95), st.floats(0, 0.95), st.floats(0.005, 0.3), st.floats(0.005, 0.3)
).map(lambda t: (t[0], t[1], min(1.0, t[0] + t[2]), min(1.0, t[1] + t[3])))


@given(boxes)
def test_correct_box_contains_the_cue_and_stays_below_one(box) -> None:
    got = correct_op(_seed(box)).arguments["bbox_2d"]
    assert got[0] <= box[0] + 1e-9 and got[1] <= box[1] + 1e-9
    assert got[2] >= min(box[2], MAX_NORM) - 1e-9 and got[3] >= min(box[3], MAX_NORM) - 1e-9
    assert all(0 <= v <= MAX_NORM for v in got)  # compat reads boxes as normalized only if < 1
    assert all(round(v, 3) == v for v in got)


def test_outward_rounding_examples() -> None:
    assert outward((0.12345, 0.5, 0.67891, 1.0)) == [0.123, 0.5, 0.679, MAX_NORM]


@settings(max_examples=200)
@given(boxes, st.text(min_size=1, max_size=8))
def test_a_miss_really_misses_after_the_executor_padding(box, sid) -> None:
    op = wrong_op(_seed(box, sid), "displaced", PAD)
    assert op is not None and op.error
    x1, y1, x2, y2 = op.arguments["bbox_2d"]
    if op.miss == "displaced":  # the padded crop does not touch the cue at all
        assert x2 + PAD <= box[0] or box[2] <= x1 - PAD or y2 + PAD <= box[1] or box[3] <= y1 - PAD
    else:  # too wide: most of the image, so no sharper than the whole view
        assert op.miss == "too_wide" and x2 - x1 >= 0.69 and y2 - y1 >= 0.69


def test_video_ops_are_one_based_and_wrong_frames_are_far_from_the_key_frames() -> None:
    seed = Seed(
        "v",
        "video",
        "Q",
        ("A",),
        frames=tuple(Path(f"{i}.jpg") for i in range(16)),
        key_frames=(4, 5),
    )
    assert correct_op(seed).arguments == {"target_frames": [5, 6]}
    wrong = wrong_op(seed, "wrong_frames", PAD)
    assert wrong is not None and wrong.arguments == {"target_frames": [15, 16]}


def test_words() -> None:
    assert where_words([0.0, 0.0, 0.1, 0.1]) == "in the upper left"
    assert where_words([0.4, 0.4, 0.6, 0.6]) == "in the centre"
    assert where_words([0.8, 0.4, 0.9, 0.6]) == "on the right side"
    assert where_words([0.4, 0.8, 0.6, 0.9]) == "near the bottom centre"
    assert frames_words([4]) == "frame 4"
    assert frames_words([4, 5, 6]) == "frames 4 to 6"
    assert frames_words([2, 5, 9]) == "frames 2, 5 and 9"


# ----------------------------------------------------------------------------- plan
@given(st.integers(0, 200), st.floats(0, 1))
def test_spread_marks_round_down_of_n_times_ratio(n, ratio) -> None:
    flags = spread(n, ratio)
    assert len(flags) == n and sum(flags) == int(n * ratio + 1e-9)


def test_plan_mix_is_exact_and_deterministic() -> None:
    seeds = [_seed((0.1, 0.1, 0.2, 0.2), f"h{i}") for i in range(10)]
    seeds += [_seed((0.1, 0.1, 0.2, 0.2), f"e{i}", easy=True) for i in range(3)]
    plan = make_plan(seeds, n_pixel=8, n_text=3, ratio=0.25, seed=7)
    assert plan.count("single_pass") == 6 and plan.count("self_correction") == 2
    assert {a.seed.id for a in plan.assignments if a.kind == "text_only"} == {"e0", "e1", "e2"}
    assert len({a.seed.id for a in plan.assignments}) == 11  # one trajectory per seed
    assert plan.shortfall == {"pixel_space": 0, "text_only": 0}
    assert make_plan(seeds, 8, 3, 0.25, 7).assignments == plan.assignments


def test_plan_reports_shortfall() -> None:
    seeds = [_seed((0.1, 0.1, 0.2, 0.2), f"h{i}") for i in range(3)]
    plan = make_plan(seeds, n_pixel=5, n_text=2, ratio=0.0, seed=0)
    assert plan.shortfall == {"pixel_space": 2, "text_only": 2}


# ----------------------------------------------------------------------------- procedural
UPSCALING = PixelBounds(3136, 12544, 9000, 12544, 3136, 12544)
NO_UPSCALE = PixelBounds(3136, 50176, 3136, 50176, 3136, 12544)


def test_legibility_follows_the_executor_bounds() -> None:
    assert legibility_report(256, 384, UPSCALING, PAD)["zoom_helps"] is True
    flat = legibility_report(1024, 1536, NO_UPSCALE, PAD)  # crops are never magnified here
    assert flat["zoom_helps"] is False and flat["canvases"][0]["crop_px"] < 16


def test_scene_fields_are_consistent() -> None:
    for i in range(12):
        img, f = draw_scene(random.Random(f"t-{i}"), 256, 384, UPSCALING, easy=False)
        x, y, w, h = f["boxes"][0]["bbox"]
        assert x >= 0 and y >= 0 and x + w <= img.width and y + h <= img.height
        assert f["answer"] in f["options"] and f["question"].endswith(
            f"Options: {', '.join(f['options'])}."
        )
        # the panel frame is red, so the cue can be found in the whole view
        assert img.getpixel((int(x), int(y + h / 2))) == (220, 20, 20)


def test_grid_one_puts_every_panel_at_the_canvas_centre() -> None:
    centres = set()
    for grid in (1, 3):
        for i in range(30):
            img, f = draw_scene(random.Random(f"g-{i}"), 300, 300, UPSCALING, False, grid=grid)
            x, y, w, h = f["boxes"][0]["bbox"]
            cx, cy = (x + w / 2) / img.width, (y + h / 2) / img.height
            if grid == 1:
                assert (round(cx, 3), round(cy, 3)) == (0.5, 0.5)
            else:
                centres.add((round(cx * 6), round(cy * 6)))  # cell centres at 1/6, 3/6, 5/6
    assert centres == {(c, r) for c in (1, 3, 5) for r in (1, 3, 5)}


def _ink(img, box) -> list[tuple[int, int]]:
    """Black pixels inside the panel (the frame is red, the panel white)."""
    x, y, w, h = (round(v) for v in box)
    return [
        (i, j)
        for i in range(x, x + w)
        for j in range(y, y + h)
        if img.getpixel((i, j)) == (0, 0, 0)
    ]


def test_an_arrow_points_where_its_answer_says() -> None:
    # the apex is the ink's thin end: the ink's centre lies on the base side of the panel centre
    seen = set()
    for i in range(24):
        img, f = draw_scene(
            random.Random(f"a-{i}"), 300, 300, UPSCALING, False, kinds=("arrow",), grid=1
        )
        x, y, w, h = f["boxes"][0]["bbox"]
        ink = _ink(img, (x, y, w, h))
        mx = sum(p[0] for p in ink) / len(ink) - (x + w / 2)
        my = sum(p[1] for p in ink) / len(ink) - (y + h / 2)
        way = {"up": (0, 1), "down": (0, -1), "left": (1, 0), "right": (-1, 0)}[f["answer"]]
        along, across = (mx, my) if way[1] == 0 else (my, mx)
        assert along * sum(way) > 1 and abs(across) < 1, (f["answer"], mx, my)
        assert f["options"] == ["up", "down", "left", "right"] and f["task"] == "arrow"
        seen.add(f["answer"])
    assert seen == {"up", "down", "left", "right"}


def test_detail_px_sets_the_detail_size_in_the_whole_view_and_clear_margin_the_clean_ring() -> None:
    ra = legibility_report(600, 600, UPSCALING, PAD)
    rb = legibility_report(600, 600, UPSCALING, PAD, detail_px=9)
    a, b = ra["canvases"][0], rb["canvases"][0]
    # a bigger detail makes a bigger panel, hence a bigger crop that is magnified less
    assert (a["whole_px"], a["crop_px"], b["whole_px"], b["crop_px"]) == (6.0, 25.1, 9.0, 31.7)
    # above 6 px the probe read a task of the default mix from the whole view: no longer "needs"
    assert (ra["zoom_helps"], rb["zoom_helps"]) == (True, False)
    for i in range(6):
        img, f = draw_scene(
            random.Random(f"m-{i}"), 600, 600, UPSCALING, False, grid=1, clear_margin=0.05
        )
        x, y, w, h = f["boxes"][0]["bbox"]
        ring = {
            img.getpixel((round(x - 25), round(y + h / 2))),
            img.getpixel((round(x + w + 25), round(y - 25))),
        }
        assert len(ring) == 1 and ring != {(220, 20, 20)}  # the background colour, no clutter


def test_a_split_drawn_by_two_processes_is_the_one_process_split(tmp_path: Path) -> None:
    kw = {"seed": 5, "canvas_min": 256, "canvas_max": 320, "bounds": UPSCALING, "n_easy": 2}
    one = generate_split(tmp_path / "one", "train", 10, workers=1, **kw)
    seen: list[tuple[int, int]] = []
    two = generate_split(
        tmp_path / "two", "train", 10, workers=2, on_progress=lambda *a: seen.append(a), **kw
    )
    assert one.read_bytes() == two.read_bytes()
    for i in range(10):
        name = f"train/scene-{i:05d}.png"
        assert (one.parent / name).read_bytes() == (two.parent / name).read_bytes()
    assert sorted(p.name for p in (two.parent / "train").iterdir()) == [
        f"scene-{i:05d}.png" for i in range(10)
    ]  # no temporary file left behind
    assert seen == [(i, 10) for i in range(1, 11)]
    assert scene_workers(10) == 1  # a few scenes: starting processes costs more than it saves
    assert scene_workers(1000) == min(len(os.sched_getaffinity(0)), 8)


def test_a_scene_that_fails_in_a_worker_fails_the_split_without_a_seed_file(tmp_path: Path) -> None:
    # canvas_min > canvas_max: every scene's randint raises in its worker process
    bad = {"seed": 0, "canvas_min": 320, "canvas_max": 256, "bounds": UPSCALING}
    with pytest.raises(ValueError, match="empty range"):
        generate_split(tmp_path, "train", 100, workers=2, **bad)
    assert not (tmp_path / "procedural" / "train.jsonl").exists()  # so a rerun draws it again


def test_splits_are_byte_identical_and_eval_is_held_out(tmp_path: Path) -> None:
    kw = {"seed": 3, "canvas_min": 256, "canvas_max": 320, "bounds": UPSCALING}
    a = generate_split(tmp_path / "a", "train", 4, n_easy=1, **kw)
    b = generate_split(tmp_path / "b", "train", 4, n_easy=1, **kw)
    assert a.read_bytes() == b.read_bytes()
    for i in range(4):
        name = f"train/scene-{i:05d}.png"
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes()
    ev = generate_split(tmp_path / "a", "eval", 2, **kw)
    recs = eval_records(ev, tmp_path / "a")
    assert [r["qid"] for r in recs] == ["procedural-eval-00000", "procedural-eval-00001"]
    assert recs[0]["image"] == ["procedural/eval/scene-00000.png"] and not recs[0]["is_video"]
    assert (tmp_path / "a" / recs[0]["image"][0]).is_file()
    assert recs[0]["answer"] in recs[0]["options"]
    train_imgs = {(a.parent / f"train/scene-{i:05d}.png").read_bytes() for i in range(4)}
    assert (tmp_path / "a" / recs[0]["image"][0]).read_bytes() not in train_imgs
