"""From a prior's log-probs to the non-negative weights the samplers multiply.

Temperature τ divides the prior log-probs (p_i^(1/τ), renormalised); the likelihood is not
tempered. top_k keeps each row's k most probable codes of that tempered prior. Weights are
float64 and scaled so each row's maximum is 1 (before any unary factor, `times`): only
ratios within a step matter for a draw; the scale is kept (`log_scale`) for the step's
evidence, which sequential Monte Carlo needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SourceWeights:
    """values (C, K) float64, 0 outside the support; support (C, k) long, or None for all K;
    log_scale (C,) float64: values · exp(log_scale) are the weights before scaling (the prior
    probabilities themselves when untempered and unpruned), None where nobody kept it."""

    values: torch.Tensor
    support: torch.Tensor | None
    log_scale: torch.Tensor | None = None

    def support_or_all(self) -> torch.Tensor:
        """The support as (C, k) indices, arange(K) per row when unrestricted."""
        if self.support is not None:
            return self.support
        c, k = self.values.shape
        return torch.arange(k).expand(c, k)

    def times(self, factor: torch.Tensor) -> SourceWeights:
        """These weights times a positive factor per code (K,), the scale kept: a unary
        term on this source's code (`separate`'s source_factors) enters the draw and the
        evidence as if the prior had carried it."""
        return SourceWeights(self.values * factor, self.support, self.log_scale)

    def support_values(self) -> torch.Tensor:
        """values on the support, (C, k)."""
        if self.support is None:
            return self.values
        return self.values.gather(1, self.support)


def prior_weights(
    log_probs: torch.Tensor, temperature: float = 1.0, top_k: int | None = None
) -> SourceWeights:
    """Weights ∝ p(z)^(1/τ) on the top-k codes (all codes when top_k is None or >= K)."""
    logits = log_probs.to(torch.float64) / temperature  # (C, K)
    k = logits.shape[1]
    if top_k is None or top_k >= k:
        top = logits.max(1, keepdim=True).values
        return SourceWeights((logits - top).exp(), None, top.squeeze(1))
    top, support = logits.topk(top_k, dim=1)  # (C, k), sorted: top[:, 0] is the maximum
    values = torch.zeros_like(logits)
    values.scatter_(1, support, (top - top[:, :1]).exp())
    return SourceWeights(values, support, top[:, 0].clone())
