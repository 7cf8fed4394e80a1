"""CPU training runs of `pixelctl sft` on the tiny model (slow): the loss falls, the trainable
weights move and the vision tower does not, the model loads back, and a killed run resumes
with the same step count, schedule and losses as an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixelctl.cli.launch import run_stage
from tests.test_sft_helpers import (
    TINY_RECIPE_BOUNDS,
    self_correction,
    single_pass,
    text_only,
    write_jsonl,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "tiny_cpu.yaml")


def make_data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    recs = [single_pass(folder, f"s{i}") for i in range(2)] + [
        self_correction(folder, "c0"),
        text_only(folder, "t0"),
    ]
    broken = json.loads(json.dumps(recs[0]))
    broken["id"] = "broken"
    broken["message_list"].pop(2)
    return write_jsonl(folder / "sft.jsonl", [*recs, broken])


def overrides(tmp_path: Path, tiny: Path, steps: int, lr: str = "2.0e-2") -> list[str]:
    return [
        f"sft.data=[{make_data(tmp_path)}]",
        f"model.name_or_path={tiny}",
        f"launch.runs_root={tmp_path / 'runs'}",
        f"sft.max_steps={steps}",
        "sft.global_batch_size=2",
        "sft.per_device_batch_size=2",
        f"sft.lr={lr}",
        "sft.save_steps=2",
        "sft.mask=all_assistant",
        "max_reject_fraction=0.25",  # the data holds one broken record of five on purpose
        *TINY_RECIPE_BOUNDS,
    ]


def metrics(run: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [m for m in lines if "event" not in m]  # the resume marker is no step


def only_run(tmp_path: Path) -> Path:
    [run] = [p for p in (tmp_path / "runs" / "sft").iterdir() if not p.is_symlink()]
    return run


def test_cpu_run_learns_trains_the_language_model_only_and_loads_back(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    import torch
    import trl.trainer.utils as trl_utils
    from transformers import AutoModelForImageTextToText, AutoProcessor

    # each call into TRL's chunked log-prob kernel: was the compact branch switched on for CPU?
    # (test_sft_fused_head.py shows the switch scores only the labelled rows, to the same loss)
    compact, kernel = [], trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(*args):
            compact.append(trl_utils._use_triton(torch.device("cpu")))
            return kernel.apply(*args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    # the tiny recipe trains its random vision tower (the demo needs it); the paper freezes it
    frozen = [*overrides(tmp_path, tiny_model_dir, 8), "model.freeze_vision=true"]
    code = run_stage("sft", RECIPE, frozen, dry_run=False, resume=None, tag=None)
    assert code == 0
    assert compact == [True] * 8  # one micro-batch a step
    run = only_run(tmp_path)
    losses = [m["loss"] for m in metrics(run)]
    assert len(losses) == 8 and losses[-1] < 0.8 * losses[0]
    skipped = [json.loads(x) for x in (run / "rejects.jsonl").read_text().splitlines()]
    assert [(s["id"], s["line"]) for s in skipped] == [("broken", 5)]
    assert json.loads((run / "meta.json").read_text())["sft"]["records"] == 4

    before = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).state_dict()
    model = AutoModelForImageTextToText.from_pretrained(run / "model")
    after = model.state_dict()
    visual = [k for k in before if ".visual." in f".{k}"]
    language = [k for k in before if k not in visual]
    assert visual and all(torch.equal(before[k], after[k]) for k in visual)
    moved = [k for k in language if not torch.equal(before[k], after[k])]
    assert moved == language

    # the saved folder is what eval and rl load: processor + model, generating on an image
    processor = AutoProcessor.from_pretrained(run / "model")
    from PIL import Image

    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(
        text=[text], images=[Image.new("RGB", (56, 56), "blue")], return_tensors="pt"
    )
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3 or out[0, -1].item() in (
        processor.tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )


def test_resume_continues_step_count_schedule_and_losses(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    from pixelctl.sft import progress

    ovs = overrides(tmp_path, tiny_model_dir, 4, lr="1.0e-2")
    assert run_stage("sft", RECIPE, ovs, dry_run=False, resume=None, tag="whole") == 0
    whole = next((tmp_path / "runs" / "sft").glob("*-whole"))

    original = progress.RichProgress.on_step_end

    def killed_at_step_3(self, args, state, control, **kw):
        original(self, args, state, control, **kw)
        if state.global_step == 3:  # after checkpoint-2 was saved, before step 3 is logged
            raise KeyboardInterrupt

    monkeypatch.setattr(progress.RichProgress, "on_step_end", killed_at_step_3)
    assert run_stage("sft", RECIPE, ovs, dry_run=False, resume=None, tag="killed") == 130
    killed = next((tmp_path / "runs" / "sft").glob("*-killed"))
    assert json.loads((killed / "meta.json").read_text())["status"] == "interrupted"
    assert [m["step"] for m in metrics(killed)] == [1, 2]

    monkeypatch.setattr(progress.RichProgress, "on_step_end", original)
    assert run_stage("sft", None, [], dry_run=False, resume=killed, tag=None) == 0
    resumed, reference = metrics(killed), metrics(whole)
    assert [m["step"] for m in resumed] == [1, 2, 3, 4]
    lines = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [m.get("step", m.get("event")) for m in lines] == [1, 2, "resume", 3, 4]
    assert [m["lr"] for m in resumed] == [m["lr"] for m in reference]
    assert [m["loss"] for m in resumed] == pytest.approx([m["loss"] for m in reference], rel=1e-4)
    assert json.loads((killed / "meta.json").read_text())["status"] == "ok"


def test_vision_lr_trains_the_tower_at_its_own_rate(tmp_path: Path, tiny_model_dir: Path):
    """`sft.vision_lr` through the real `SFTTrainer`: Adam moves a weight by at most a few times
    its learning rate a step, so at 1/1000 of the text model's rate the tower's largest change
    stays under 4 × steps × vision_lr while the text model's is far above it."""
    import torch
    from transformers import AutoModelForImageTextToText

    steps, lr, vision_lr = 4, 2.0e-2, 2.0e-5
    args = [*overrides(tmp_path, tiny_model_dir, steps, lr=str(lr)), f"sft.vision_lr={vision_lr}"]
    assert run_stage("sft", RECIPE, args, dry_run=False, resume=None, tag=None) == 0
    before = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(only_run(tmp_path) / "model").state_dict()

    def largest_change(keys: list[str]) -> float:
        return max(float((after[k] - before[k]).abs().max()) for k in keys)

    visual = [k for k in before if ".visual." in f".{k}"]
    language = [k for k in before if k not in visual]
    bound = 4 * steps * vision_lr
    assert 0 < largest_change(visual) < bound
    assert largest_change(language) > 10 * bound
    assert all(not torch.equal(before[k], after[k]) for k in visual)  # trained, not frozen
