"""The hybrid's likelihood on the mixture's token *and* its continuous latent (`hybrid`).

    L(y_t, m_t | a, b) = p(y_t | a, b) · exp(-‖m_t - ½(e_a + e_b)‖² / 2σ²)

The count table says which pairs were seen making y_t; the Gaussian on the encoder's output
m_t (before quantisation) says where inside y_t's cell the mixture lies, which the token
alone cannot. σ here is a tuning knob, not a fit: the product counts the same evidence
twice where the two agree, so the latent term is flattened (σ well above the lqvae fit).
Observations are step indices t into one mixture's tokens and latents, as for
`LatentGaussianLikelihood`; per step the K×K table is dense (the count slice made dense,
times the Gaussian), handed to the samplers as a `DenseLogBase`.
"""

from __future__ import annotations

import torch

from latsep.models.likelihood.latent_gaussian import LatentGaussianLikelihood
from latsep.models.likelihood.pair_slice import PairSlice, dense_log_slice


class LatentCountLikelihood:
    """p(y_t | a, b) · N(m_t; ½(e_a + e_b), σ²) for the steps t of one mixture."""

    num_sources = 2

    def __init__(
        self, counts: object, latent: LatentGaussianLikelihood, tokens: torch.Tensor
    ) -> None:
        tokens = torch.as_tensor(tokens).long().reshape(-1)
        if tokens.shape[0] != latent.num_observations:
            raise ValueError(
                f"{tokens.shape[0]} mixture tokens for {latent.num_observations} latents"
            )
        k = latent.num_tokens
        if counts.num_tokens != k:  # type: ignore[attr-defined]
            raise ValueError(f"count table has {counts.num_tokens} codes, codebook {k}")  # type: ignore[attr-defined]
        self.counts = counts
        self.latent = latent
        self.tokens = tokens

    @property
    def num_tokens(self) -> int:
        return self.latent.num_tokens

    @property
    def num_observations(self) -> int:
        return self.latent.num_observations

    def log_prob(self, z1: torch.Tensor, z2: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log p(y_t | z1, z2) - ‖m_t - ½(e_z1 + e_z2)‖² / 2σ², float64."""
        t = torch.as_tensor(t)
        counts = self.counts.log_prob(z1, z2, self.tokens[t])  # type: ignore[attr-defined]
        return counts + self.latent.log_prob(z1, z2, t)

    def log_table(self, t: int, weight: float = 1.0) -> torch.Tensor:
        """weight · log L for every pair at step t, (K, K) float64 (-inf where p(y_t|a,b) = 0)."""
        y = self.tokens[t : t + 1]
        slc = self.counts.pair_slice(y, weight)  # type: ignore[attr-defined]
        k = self.num_tokens
        dense = slc.base.matrix(0).clone()  # p^w / exp(offset), base part
        flat = (slc.a[0] * k + slc.b[0]).reshape(-1)
        dense.view(-1).index_add_(0, flat, slc.delta[0].reshape(-1))  # the seen pairs
        offset = torch.as_tensor(slc.log_offset, dtype=torch.float64).reshape(-1)[0]
        return dense.log() + offset + self.latent.log_table(t, weight)

    def pair_slice(self, targets: torch.Tensor, weight: float) -> PairSlice:
        """L^weight at one shared step t for every row, scaled so the best pair has weight 1
        (the samplers narrow the scale to the pairs their supports reach)."""
        t = int(targets[0])
        if not bool((targets == t).all()):
            raise ValueError("LatentCountLikelihood slices one step per call")
        return dense_log_slice(self.log_table(t, weight), targets.shape[0])
