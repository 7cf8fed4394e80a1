"""TRL's fused LM head on CPU scores only the trained positions (`labelled_positions_only`), and
that changes no number: loss, per-token log-probs, entropy, top-1 and every gradient match the
path that scores every position. Runs TRL's own `add_fused_lm_head` on the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pixelctl.sft.hf_trainer import labelled_positions_only


@pytest.fixture(scope="module")
def fused_model(tiny_model_dir: Path):
    from transformers import AutoModelForImageTextToText
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # as SFTTrainer does
    return model


def batch(vocab: int) -> dict[str, torch.Tensor]:
    """Two rows of 40 tokens, the second padded by 8; labels on 2 short spans (a trained turn)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, vocab, (2, 40), generator=g)
    attention = torch.ones_like(ids)
    attention[1, 32:] = 0
    labels = torch.full_like(ids, -100)
    labels[0, 20:30] = ids[0, 20:30]
    labels[1, 5:12] = ids[1, 5:12]
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


def run(model, inputs, monkeypatch, compact: bool):
    """Outputs, gradients and the row count of each call into TRL's chunked log-prob kernel."""
    import trl.trainer.utils as trl_utils

    rows: list[int] = []
    kernel = trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden, *rest):
            rows.append(hidden.shape[0])
            return kernel.apply(hidden, *rest)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    model.zero_grad()
    if compact:
        with labelled_positions_only():
            out = model(**inputs, fused_lm_head=True)
    else:
        out = model(**inputs, fused_lm_head=True)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    monkeypatch.undo()
    return out, grads, rows


def test_cpu_scores_only_labelled_positions_with_the_same_loss_and_gradients(
    fused_model, monkeypatch
):
    inputs = batch(fused_model.config.get_text_config().vocab_size)
    full, full_grads, full_rows = run(fused_model, inputs, monkeypatch, compact=False)
    part, part_grads, part_rows = run(fused_model, inputs, monkeypatch, compact=True)

    # 2 rows × 39 shifted positions scored before; now only the 10 + 7 labelled ones
    assert full_rows == [78]
    assert part_rows == [int((inputs["labels"][:, 1:] != -100).sum())] == [17]
    torch.testing.assert_close(part.loss, full.loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(part.log_probs, full.log_probs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(part.entropy, full.entropy, rtol=1e-5, atol=1e-6)
    assert torch.equal(part.is_top1, full.is_top1)
    assert torch.equal(part.label_mask, full.label_mask)
    assert float(part.log_probs.detach()[~part.label_mask].abs().sum()) == 0.0
    assert part_grads.keys() == full_grads.keys() and len(part_grads) > 10
    for name, grad in full_grads.items():
        torch.testing.assert_close(part_grads[name], grad, rtol=1e-4, atol=1e-7, msg=name)


def test_the_switch_is_scoped_to_the_loss_and_restored_after_an_error():
    import trl.trainer.utils as trl_utils

    before = trl_utils._use_triton
    cpu = torch.device("cpu")
    assert before(cpu) is False  # TRL 1.16 (pinned): every position is scored on CPU
    with pytest.raises(RuntimeError), labelled_positions_only():
        assert trl_utils._use_triton(cpu) is True
        raise RuntimeError("a failing step")
    assert trl_utils._use_triton is before
