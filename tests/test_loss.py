"""Clipped policy loss on hand-computed tensors (docs/method.md §5)."""

from __future__ import annotations

import math

import pytest
import torch

from pixelctl.rl.loss import policy_loss, token_mean

F64 = torch.float64


def lp(*ratios: float) -> torch.Tensor:
    """Log-probabilities whose ratio to an all-zero old policy is ``ratios``."""
    return torch.tensor([math.log(r) for r in ratios], dtype=F64)


def test_clipped_surrogate_by_hand():
    # sample 0 (A = +1): ratio 1.5 -> clipped at 1.35; ratio 0.5 -> unclipped 0.5
    # sample 1 (A = -2): ratio 0.5 -> clipped at 0.8 (-1.6 < -1.0); ratio 1.5 -> -3.0 unclipped
    # third column is masked out and has an absurd ratio
    logprobs = torch.stack([lp(1.5, 0.5, 50.0), lp(0.5, 1.5, 50.0)])
    old = torch.zeros_like(logprobs)
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    out = policy_loss(logprobs, old, torch.tensor([1.0, -2.0], dtype=F64), mask)
    assert out.loss.item() == pytest.approx((-1.35 - 0.5 + 1.6 + 3.0) / 4, abs=1e-12)
    assert out.pg_loss.item() == pytest.approx(0.6875, abs=1e-12)
    assert out.clip_frac.item() == pytest.approx(0.5, abs=1e-12)
    assert out.ratio_mean.item() == pytest.approx(1.0, abs=1e-12)
    assert out.kl.item() == 0.0


def test_clip_is_asymmetric():
    logprobs = torch.stack([lp(1.3), lp(1.4), lp(0.75)])
    adv = torch.tensor([1.0, 1.0, -1.0], dtype=F64)
    mask = torch.ones(3, 1)
    out = policy_loss(logprobs, torch.zeros_like(logprobs), adv, mask)
    # 1.3 < 1.35 passes; 1.4 clips to 1.35; 0.75 clips up to 0.8 for a negative advantage
    assert out.loss.item() == pytest.approx((-1.3 - 1.35 + 0.8) / 3, abs=1e-12)
    symmetric = policy_loss(logprobs, torch.zeros_like(logprobs), adv, mask, clip_high=0.2)
    assert symmetric.loss.item() == pytest.approx((-1.2 - 1.2 + 0.8) / 3, abs=1e-12)


def test_token_mean_weights_long_samples_by_their_length():
    logprobs = torch.zeros(2, 4, dtype=F64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])
    out = policy_loss(logprobs, logprobs, torch.tensor([1.0, -1.0], dtype=F64), mask)
    assert out.loss.item() == pytest.approx((-4 + 1) / 5, abs=1e-12)  # not (-1 + 1) / 2


def test_per_token_advantages():
    logprobs = torch.zeros(1, 3, dtype=F64)
    adv = torch.tensor([[1.0, 2.0, -3.0]], dtype=F64)
    out = policy_loss(logprobs, logprobs, adv, torch.ones(1, 3))
    assert out.loss.item() == pytest.approx(0.0, abs=1e-12)
    out = policy_loss(logprobs, logprobs, adv, torch.tensor([[1, 1, 0]]))
    assert out.loss.item() == pytest.approx(-1.5, abs=1e-12)


def test_gradient_flows_only_through_unclipped_tokens():
    logprobs = torch.stack([lp(1.5, 1.0)]).requires_grad_(True)
    old = torch.zeros(1, 2, dtype=F64)
    out = policy_loss(logprobs, old, torch.tensor([2.0], dtype=F64), torch.ones(1, 2))
    out.loss.backward()
    # d(-ratio * A / n)/d logp = -ratio * A / n = -1 * 2 / 2 for the unclipped token
    assert logprobs.grad[0].tolist() == pytest.approx([0.0, -1.0], abs=1e-12)


def test_kl_term_k3():
    logprobs = torch.zeros(1, 2, dtype=F64)
    ref = torch.tensor([[math.log(2.0), 0.0]], dtype=F64)
    mask = torch.ones(1, 2)
    adv = torch.tensor([0.0], dtype=F64)
    out = policy_loss(logprobs, logprobs, adv, mask, ref_logprobs=ref, kl_coef=0.1)
    k3 = (2.0 - math.log(2.0) - 1.0) / 2  # second token has kl 0
    assert out.kl.item() == pytest.approx(k3, abs=1e-12)
    assert out.loss.item() == pytest.approx(0.1 * k3, abs=1e-12)
    # the KL is reported but not added when its coefficient is zero (the default)
    off = policy_loss(logprobs, logprobs, adv, mask, ref_logprobs=ref)
    assert off.loss.item() == 0.0
    assert off.kl.item() == pytest.approx(k3, abs=1e-12)


def test_entropy_bonus():
    logprobs = torch.zeros(1, 2, dtype=F64)
    entropy = torch.tensor([[1.0, 3.0]], dtype=F64)
    adv = torch.tensor([1.0], dtype=F64)
    out = policy_loss(logprobs, logprobs, adv, torch.ones(1, 2), entropy=entropy, entropy_coef=0.01)
    assert out.entropy.item() == pytest.approx(2.0, abs=1e-12)
    assert out.loss.item() == pytest.approx(-1.0 - 0.02, abs=1e-12)


def test_empty_mask_gives_zero_not_nan():
    logprobs = torch.zeros(2, 3, dtype=F64)
    out = policy_loss(logprobs, logprobs, torch.ones(2, dtype=F64), torch.zeros(2, 3))
    assert out.loss.item() == 0.0
    assert token_mean(torch.ones(3), torch.zeros(3)).item() == 0.0


def test_missing_inputs_for_optional_terms_raise():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_loss(x, x, torch.ones(1), torch.ones(1, 2), kl_coef=0.1)
    with pytest.raises(ValueError, match="entropy"):
        policy_loss(x, x, torch.ones(1), torch.ones(1, 2), entropy_coef=0.1)
