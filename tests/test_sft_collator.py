"""The collator on the tiny model's real processor: exact trained text per mask mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelctl.sft.load import load_records
from tests.test_sft_helpers import SETTINGS, self_correction, single_pass, text_only, write_jsonl

FIX = (
    'Nothing there; try lower right. <tool_call>\n{"name": "crop_image_normalized", '
    '"arguments": {"bbox_2d": [0.5, 0.5, 0.9, 0.9], "target_image": 1}}\n</tool_call><|im_end|>'
)
ERR = (
    'Zoom top left. <tool_call>\n{"name": "crop_image_normalized", "arguments": '
    '{"bbox_2d": [0.0, 0.0, 0.3, 0.3], "target_image": 1}}\n</tool_call><|im_end|>'
)
ANSWER = "Blue. \\boxed{blue}<|im_end|>"


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture
def records(tmp_path: Path):
    recs = [self_correction(tmp_path), single_pass(tmp_path), text_only(tmp_path)]
    return load_records([write_jsonl(tmp_path / "sft.jsonl", recs)], SETTINGS).records


def collate(processor, records, mask):
    from pixelctl.sft.collator import PixelCollator

    return PixelCollator(processor, mask=mask, settings=SETTINGS)([r.to_row() for r in records])


def trained_runs(processor, out, row):
    """The decoded text of each maximal run of trained tokens."""
    from tests.test_sft_masks import trained_spans  # a reading aid, kept beside the mask tests

    ids, labels = out["input_ids"][row], out["labels"][row]
    spans = trained_spans((labels != -100).tolist())
    return [processor.tokenizer.decode(ids[a:b]) for a, b in spans]


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        ("last_two_assistant", [FIX, ANSWER]),
        ("all_assistant", [ERR, FIX, ANSWER]),
        ("skip_marked_errors", [FIX, ANSWER]),
    ],
)
def test_self_correction_trained_text_per_mode(processor, records, mask, expected):
    out = collate(processor, records[:1], mask)
    assert trained_runs(processor, out, 0) == expected


def test_batch_labels_copy_ids_only_where_trained_and_never_on_images_or_padding(
    processor, records
):
    out = collate(processor, records, "all_assistant")
    ids, labels, attention = out["input_ids"], out["labels"], out["attention_mask"]
    trained = labels != -100
    assert (labels[trained] == ids[trained]).all()
    vision = {
        processor.tokenizer.convert_tokens_to_ids(t)
        for t in ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>")
    }
    for v in vision:
        assert not trained[ids == v].any()
    assert not trained[attention == 0].any()
    assert attention[2].sum() < attention.shape[1]  # the text-only row is padded
    assert trained_runs(processor, out, 2) == ["It is blue. \\boxed{blue}<|im_end|>"]
    # inputs + crops: self-correction 1 + 2, single pass 1 + 1, text-only 1 + 0
    assert out["image_grid_thw"].shape[0] == 3 + 2 + 1


def test_length_estimate_matches_the_collated_length(processor, records):
    from pixelctl.sft.data import estimate_length

    for r in records:
        out = collate(processor, [r], "all_assistant")
        assert estimate_length(r, processor, SETTINGS) == out["input_ids"].shape[1]


def test_video_record_frames_and_selected_frames(processor, tmp_path: Path):
    from pixelctl.sft.data import estimate_length
    from tests.test_sft_helpers import video

    result = load_records([write_jsonl(tmp_path / "v.jsonl", [video(tmp_path)])], SETTINGS)
    assert result.skipped == []
    [record] = result.records
    assert [it["kind"] for it in record.image_items()] == ["frame", "frame"]
    out = collate(processor, [record], "last_two_assistant")
    # 4 frames of 112x84 → 2 temporal patches of 6x8 14-px patches (24 merged tokens)
    assert out["video_grid_thw"].tolist() == [[2, 6, 8]]
    assert out["image_grid_thw"].shape[0] == 2
    assert estimate_length(record, processor, SETTINGS) == out["input_ids"].shape[1]
    assert trained_runs(processor, out, 0)[-1] == "The colour. \\boxed{colour}<|im_end|>"
