"""The clipped policy-gradient loss of curiosity-driven GRPO (docs/method.md §5). The only torch module
among the pure ones.

Per trained token t of sample i (``action_mask`` = 1 on every assistant turn, 0 on system,
question, observations and errors)::

    ratio = exp(logp - logp_old)
    pg    = -min(ratio * A_i, clip(ratio, 1 - clip_low, 1 + clip_high) * A_i)
    loss  = token_mean(pg) [+ kl_coef * token_mean(k3)] [- entropy_coef * token_mean(H)]

``token_mean`` averages over every trained token of the micro-batch (not per sample first),
so long trajectories weigh by their length. The asymmetric clip (0.2 low, 0.35 high) lets
rare good actions grow faster than common ones shrink. The KL term (k3 estimator against a
reference policy, ``exp(ref - logp) - (ref - logp) - 1``, bounded at 10 as OpenRLHF bounds it)
and the entropy bonus are off by default: the reference run has no reference model. Both
engines add them the same way (OpenRLHF: ``--algo.kl.use_loss --algo.kl.estimator k3``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PolicyLossOutput:
    """The loss to backpropagate plus detached diagnostics."""

    loss: torch.Tensor
    pg_loss: torch.Tensor
    kl: torch.Tensor
    entropy: torch.Tensor
    clip_frac: torch.Tensor
    ratio_mean: torch.Tensor


def token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the tokens where ``mask`` is 1 (0 when nothing is trained)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    action_mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.35,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
) -> PolicyLossOutput:
    """Clipped surrogate loss; ``advantages`` is per sample ``(B,)`` or per token ``(B, T)``."""
    if kl_coef and ref_logprobs is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs")
    if entropy_coef and entropy is None:
        raise ValueError("entropy_coef > 0 needs the per-token entropy")
    if advantages.dim() == logprobs.dim() - 1:
        advantages = advantages.unsqueeze(-1)
    advantages = advantages.to(logprobs.dtype)
    ratio = torch.exp(logprobs - old_logprobs)
    surr = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * advantages
    pg_loss = token_mean(-torch.minimum(surr, clipped), action_mask)
    loss = pg_loss
    zero = logprobs.new_zeros(())
    kl = zero
    if ref_logprobs is not None:
        # bounded as OpenRLHF's compute_approx_kl bounds it (log-ratio and value at 10)
        log_r = (ref_logprobs - logprobs).clamp(max=10.0)
        kl = token_mean((torch.exp(log_r) - log_r - 1.0).clamp(max=10.0), action_mask)
        loss = loss + kl_coef * kl
    ent = token_mean(entropy, action_mask) if entropy is not None else zero
    if entropy_coef:
        loss = loss - entropy_coef * ent
    with torch.no_grad():
        clip_frac = token_mean((clipped < surr).to(logprobs.dtype), action_mask)
        ratio_mean = token_mean(ratio, action_mask)
    return PolicyLossOutput(
        loss, pg_loss.detach(), kl.detach(), ent.detach(), clip_frac, ratio_mean
    )
