"""The demo model's perception pretraining (`pixelctl.models.perception`) and its pictures."""

import json
import math
import random
import shutil
from pathlib import Path

import pytest

from pixelctl.models import perception
from pixelctl.models.perception import PerceptionArgs
from pixelctl.synth.procedural import SHAPES, panel_picture

SMALL = PerceptionArgs(steps=12, batch_size=4, lr=3.0e-3, warmup_steps=2, n_held_out=2)


def _shows_forms() -> set[str]:
    sides = {f"the circle on the {s} of the triangle" for s in ("left", "right")}
    return {f"a black {s}" for s in SHAPES} | sides


def test_panel_picture_is_deterministic_centred_and_blurred():
    image, shows = panel_picture(random.Random("x"), 224, 48.0, (6.0, 9.0))
    again, shows_again = panel_picture(random.Random("x"), 224, 48.0, (6.0, 9.0))
    assert image.size == (224, 224) and shows in _shows_forms()
    assert (image.tobytes(), shows) == (again.tobytes(), shows_again)
    # the panel (white, framed in red) is at the centre, 48 / 0.6 = 80 px wide: a pixel just
    # inside its frame is near-white, the frame reddish
    r, g, b = image.getpixel((112 - 32, 112 - 32))
    assert min(r, g, b) > 180
    fr, fg, fb = image.getpixel((112 - 41, 112))
    assert fr > fg + 40 and fr > fb + 40
    # resampled down by 6-9x and back up: the edges are soft, so neighbouring pixels differ
    # far less than in the same picture drawn sharp (blur factor 1)
    sharp, _ = panel_picture(random.Random("x"), 224, 48.0, (1.0, 1.0))
    assert _edge_energy(sharp) > 1.5 * _edge_energy(image)


def _edge_energy(image) -> float:
    import numpy as np

    a = np.asarray(image.convert("L"), dtype=float)
    return float(np.abs(np.diff(a, axis=1)).mean())


def test_panel_picture_needs_a_side_of_whole_visual_tokens():
    with pytest.raises(ValueError, match="multiple of 28"):
        panel_picture(random.Random(0), 200)


def test_pictures_come_from_their_own_seed_namespace():
    args = PerceptionArgs()
    a, text = perception.picture(3, args)
    b, text_b = perception.picture(3, args)
    assert a.tobytes() == b.tobytes() and text == text_b
    assert text.startswith("It shows ") and text.endswith(".")
    other, _ = perception.picture(3, PerceptionArgs(seed=1))
    assert other.tobytes() != a.tobytes()


def test_lr_warms_up_then_decays_by_cosine():
    args = PerceptionArgs(steps=100, warmup_steps=10)
    assert perception.lr_factor(0, args) == pytest.approx(0.1)
    assert perception.lr_factor(9, args) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.09)))
    assert perception.lr_factor(50, args) == pytest.approx(0.5)
    assert perception.lr_factor(99, args) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))


@pytest.mark.slow
def test_only_the_reply_and_its_end_token_are_trained(tiny_model_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    items = [perception.picture(i, SMALL) for i in range(3)]
    inputs, labels = perception.encode(processor, items)
    tok = processor.tokenizer
    for row, (_, text) in enumerate(items):
        trained = labels[row][labels[row] != -100].tolist()
        assert tok.decode(trained) == text + tok.eos_token
        # one contiguous span that ends at the row's last real token (its end token), so
        # neither the prompt nor the right padding is trained
        where = (labels[row] != -100).nonzero().flatten().tolist()
        n = int(inputs["attention_mask"][row].sum())
        assert where == list(range(n - len(trained), n))
    assert int((inputs["input_ids"] == tok.convert_tokens_to_ids("<|image_pad|>")).sum()) == 3 * 64


@pytest.mark.slow
def test_pretrain_trains_in_place_and_reports(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText

    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "m")
    before = AutoModelForImageTextToText.from_pretrained(model_dir).state_dict()
    steps = []
    stats = perception.pretrain(model_dir, SMALL, on_step=lambda *a: steps.append(a))
    after = AutoModelForImageTextToText.from_pretrained(model_dir).state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(".visual." in f".{k}" for k in changed)  # the tower trains too
    assert any("language_model" in k for k in changed) and "lm_head.weight" in changed
    assert stats["steps"] == 12 and stats["held_out_exact"].endswith("/2")
    assert stats["last_loss"] < stats["first_loss"]
    assert [(done, total) for done, total, _ in steps] == [(i, 12) for i in range(1, 13)]
    assert (round(steps[0][2], 4), round(steps[-1][2], 4)) == (
        stats["first_loss"],
        stats["last_loss"],
    )
    json.dumps(stats)  # it goes into the build info


@pytest.mark.slow
def test_the_demo_model_as_built_names_what_a_panel_shows():
    """The real build (cached after the first use): its held-out captions are read, not guessed.
    A guess would be exact about 3 times in 8 (1 in 4 shapes, 1 in 2 left/right): 24 of 64."""
    from pixelctl.models.resolve import resolve_model
    from pixelctl.models.tiny import BUILD_INFO_FILE

    folder = Path(resolve_model("builtin:tiny-qwen2.5-vl-demo"))
    info = json.loads((folder / BUILD_INFO_FILE).read_text())["perception"]
    right, n = map(int, info["held_out_exact"].split("/"))
    assert n == 64 and right >= 40, info
    assert info["last_loss"] < 0.05 < info["first_loss"], info
