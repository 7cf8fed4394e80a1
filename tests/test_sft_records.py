"""Reading and validating SFT records: valid ones kept, every invalid one reported with its
file, line and reason."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pixelctl.sft.load import load_records
from pixelctl.sft.records import (
    SFTDataError,
    read_frozen,
    resolve_sources,
    skip_summary,
    write_frozen,
    write_skipped,
)
from tests.test_sft_helpers import (
    BAD_BOX,
    GOOD_BOX,
    SETTINGS,
    call,
    self_correction,
    single_pass,
    text_only,
    write_jsonl,
)


def test_valid_records_are_kept_with_kinds_sizes_and_absolute_paths(tmp_path: Path):
    recs = [single_pass(tmp_path), self_correction(tmp_path), text_only(tmp_path)]
    result = load_records([write_jsonl(tmp_path / "sft.jsonl", recs)], SETTINGS)
    assert result.skipped == []
    assert [r.id for r in result.records] == ["single", "selfcorr", "textonly"]
    assert [r.kind for r in result.records] == ["single_pass", "self_correction", "text_only"]
    single, corr, _ = result.records
    # the 224x224 input at 64 tokens max stays 224x224; the crops are the executor's sizes
    assert single.sizes[0] == (224, 224) and len(single.sizes) == 2
    assert corr.error_turns == (2,) and len(corr.sizes) == 3
    first = single.image_items()[0]
    assert Path(first["image"]).is_absolute() and first["kind"] == "input"
    assert single.image_items()[1]["kind"] == "crop"
    assert single.source == f"{tmp_path / 'sft.jsonl'}:1"


def test_released_format_json_list_without_synth_fields(tmp_path: Path):
    rec = single_pass(tmp_path)
    released = {"message_list": rec["message_list"]}
    path = tmp_path / "released.json"
    path.write_text(json.dumps([released, released]))
    result = load_records([path], SETTINGS)
    assert [r.id for r in result.records] == ["released-1", "released-2"]
    assert result.records[0].kind is None and result.records[0].error_turns == ()


def _set_text(rec: dict, i: int, value: str) -> None:
    rec["message_list"][i]["content"] = [{"type": "text", "text": value}]


def _break_obs_image(rec: dict, folder: Path) -> None:
    from PIL import Image

    Image.new("RGB", (56, 56)).save(folder / "images" / "small.png")  # the executor's is 140x140
    rec["message_list"][3]["content"][1]["image"] = "images/small.png"


MUTATIONS = {
    "roles out of order": lambda r, f: r["message_list"].pop(2),
    "no message_list": lambda r, f: r.pop("message_list"),
    "input image unusable": lambda r, f: r["message_list"][1]["content"][0].update(
        image="images/missing.png"
    ),
    "invalid tool call": lambda r, f: _set_text(
        r,
        2,
        'look <tool_call>\n{"name": "crop_image_normalized", "arguments": {bbox}\n</tool_call>',
    ),
    "not a normalized box": lambda r, f: _set_text(r, 2, call([10, 10, 200, 200])),
    "differs from the executor": lambda r, f: r["message_list"][3]["content"][0].update(
        text="\nHere is the cropped image (Image Size: 504x392):"
    ),
    "under the train crop bounds": lambda r, f: _break_obs_image(r, f),
    "ends with a tool call, not an answer": lambda r, f: _set_text(r, 4, call(GOOD_BOX)),
    "must end with a <tool_call>": lambda r, f: _set_text(r, 2, "I will just look."),
    "chat-markup token <|im_end|>": lambda r, f: _set_text(r, 4, "done<|im_end|>"),
    "is not the index of an assistant message": lambda r, f: r.update(error_turns=[1]),
    "cannot hold images": lambda r, f: r["message_list"][4]["content"].append(
        {"type": "image", "image": "images/single.png"}
    ),
}


@pytest.mark.parametrize("reason", sorted(MUTATIONS))
def test_each_invalid_record_is_reported_with_file_line_and_reason(tmp_path: Path, reason: str):
    good = single_pass(tmp_path)
    bad = copy.deepcopy(good)
    bad["id"] = "broken"
    MUTATIONS[reason](bad, tmp_path)
    path = write_jsonl(tmp_path / "sft.jsonl", [good, bad, good])
    result = load_records([path], SETTINGS)
    assert len(result.records) == 2
    [skipped] = result.skipped
    assert (skipped.file, skipped.line) == (str(path), 2)
    assert reason in skipped.reason, skipped.reason
    assert str(skipped).startswith(f"{path}:2")


def test_broken_json_line_and_unreadable_image_file(tmp_path: Path):
    good = single_pass(tmp_path)
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps(good) + "\n{not json\n")
    (tmp_path / "images" / "single.png").write_bytes(b"not an image")
    result = load_records([path], SETTINGS)
    assert result.records == []
    reasons = {s.line: s.reason for s in result.skipped}
    assert "input image unusable" in reasons[1] and "could not be" in reasons[1]
    assert reasons[2].startswith("not valid JSON")


def test_executor_rejected_call_must_show_an_execution_error(tmp_path: Path):
    rec = single_pass(tmp_path)
    # a valid box whose crop target does not exist: the executor answers with an error
    _set_text(rec, 2, call(BAD_BOX, target=3))
    result = load_records([write_jsonl(tmp_path / "a.jsonl", [rec])], SETTINGS)
    assert "the executor rejects the call" in result.skipped[0].reason


def test_a_record_with_nothing_to_train_under_the_mask_is_reported(tmp_path: Path):
    rec = self_correction(tmp_path)
    rec["error_turns"] = [2, 4, 6]
    result = load_records(
        [write_jsonl(tmp_path / "a.jsonl", [rec])], SETTINGS, "skip_marked_errors"
    )
    assert (
        result.skipped[0].reason == "no assistant turn is trained under sft.mask=skip_marked_errors"
    )
    # the same record trains fine under the reference mask
    assert len(load_records([tmp_path / "a.jsonl"], SETTINGS).records) == 1


def test_sources_folders_and_errors(tmp_path: Path):
    write_jsonl(tmp_path / "run" / "sft.jsonl", [])
    assert resolve_sources([tmp_path / "run"]) == [tmp_path / "run" / "sft.jsonl"]
    with pytest.raises(SFTDataError, match="does not exist; run `pixelctl synth` first"):
        resolve_sources([tmp_path / "nowhere"])
    with pytest.raises(SFTDataError, match=r"sft\.data is empty"):
        resolve_sources([])
    (tmp_path / "x.json").write_text('{"message_list": []}')
    with pytest.raises(SFTDataError, match="must hold a list"):
        load_records([tmp_path / "x.json"], SETTINGS)


def test_skipped_file_summary_and_frozen_round_trip(tmp_path: Path):
    good, bad = single_pass(tmp_path), single_pass(tmp_path)
    bad["message_list"].pop(2)
    result = load_records([write_jsonl(tmp_path / "sft.jsonl", [good, bad, bad])], SETTINGS)
    write_skipped(result.skipped, tmp_path / "skipped.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "skipped.jsonl").read_text().splitlines()]
    assert [x["line"] for x in lines] == [2, 3]
    assert skip_summary(result.skipped) == {
        "roles out of order ['system', 'user', 'user', 'assistant']": 2
    }
    write_frozen(result.records, tmp_path)
    [back] = read_frozen(tmp_path)
    assert back.messages == result.records[0].messages and back.sizes == result.records[0].sizes


# ----------------------------------------------------------------------------- resume (issue 16)
def _run_with_steps(tmp_path: Path, n: int, checkpoints: tuple[int, ...] = ()):
    from pixelctl.rundir import RunDir

    run = RunDir.create(tmp_path, "sft", "t", {}, argv=["pixelctl", "sft"])
    for s in range(1, n + 1):
        run.log_metrics({"step": s, "loss": 1.0 / s})
    for c in checkpoints:  # what transformers' get_last_checkpoint looks for
        folder = run.path / "checkpoints" / f"checkpoint-{c}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text("{}")
    run.finish(130)
    return RunDir.resume(run.path, "sft")


def test_resume_cuts_metrics_back_to_the_checkpoint(tmp_path: Path):
    from pixelctl.rundir import metric_steps
    from pixelctl.sft.trainer import prepare_resume

    run = _run_with_steps(tmp_path, 5, checkpoints=(2, 4))
    note = prepare_resume(run, save_steps=2)
    assert note.endswith("(step 4; 1 later metrics line(s) discarded)")
    assert metric_steps(run.metrics_path) == [1, 2, 3, 4]
    run.log_metrics({"step": 5, "loss": 0.2})  # what the trainer logs next
    assert metric_steps(run.metrics_path) == [1, 2, 3, 4, 5]  # step 5 once


def test_resume_without_a_checkpoint_asks_for_restart(tmp_path: Path):
    from pixelctl.errors import StageError
    from pixelctl.rundir import metric_steps
    from pixelctl.sft.trainer import prepare_resume

    run = _run_with_steps(tmp_path, 3)  # killed before the first save
    with pytest.raises(StageError, match="no checkpoint to resume from") as exc:
        prepare_resume(run, save_steps=80)
    assert f"pixelctl sft --resume {run.path} --restart" in str(exc.value)
    assert metric_steps(run.metrics_path) == [1, 2, 3]  # nothing touched
    run.restart = True
    assert prepare_resume(run, save_steps=80) == "restarting this run from step 0 (--restart)"
    assert metric_steps(run.metrics_path) == []
    assert prepare_resume(_fresh(tmp_path), save_steps=80) is None  # a new run: nothing to do


def _fresh(tmp_path: Path):
    from pixelctl.rundir import RunDir

    return RunDir.create(tmp_path / "fresh", "sft", "t", {}, argv=["pixelctl", "sft"])
