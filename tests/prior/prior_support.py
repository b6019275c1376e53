"""A small transformer prior with non-trivial weights, and its plain (uncached) forward:
the reference every KV-cache test compares against."""

from __future__ import annotations

import torch

from latsep.models.prior.transformer import PriorConfig, TransformerPrior


def make_prior(context: int = 16, seed: int = 0) -> TransformerPrior:
    torch.manual_seed(seed)
    config = PriorConfig(num_tokens=11, context=context, d_model=32, num_layers=2, num_heads=4)
    prior = TransformerPrior(config).eval()
    # Random non-trivial weights so that attention actually depends on the history.
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return prior


def full_log_probs(prior: TransformerPrior, tokens: torch.Tensor) -> torch.Tensor:
    """log p(next | BOS, tokens) (B, K) from one plain forward pass, no cache."""
    return torch.log_softmax(prior(prior.with_bos(tokens)).float(), -1)[:, -1]
