"""LQ-VAE's likelihood on the mixture's continuous latent (`lqvae`, observing latents).

    log L(m_t | a, b) = -‖m_t - ½(e_a + e_b)‖² / 2σ²

m_t is the encoder's output for step t of the mixture's mean, *before* quantisation. The
token form (`GaussianLikelihood`) first rounds both m_t and the midpoint ½(e_a + e_b) to
codewords, which throws away where inside its Voronoi cell each one lies: two pairs whose
midpoints round to the same code score the same however far apart they are. The LQ-VAE
codec is trained so that the latent of a sum is close to the sum of the latents, which is
what this form scores directly.

The observation of step t is its index t into the latents this likelihood was built for
(`GaussianLikelihood.observing`); the samplers and the beam hand it over as the step's
"target" like a mixture token. Per step the K×K table of log L is one outer sum plus a fixed
matrix, since ‖m - ½(e_a + e_b)‖² = ‖m‖² - m·e_a - m·e_b + ¼(‖e_a‖² + ‖e_b‖²) + ½ e_a·e_b.
"""

from __future__ import annotations

import torch

from latsep.models.likelihood.pair_slice import PairSlice, code_slice


class LatentGaussianLikelihood:
    """log L(m_t | a, b) = -‖m_t - ½(e_a + e_b)‖² / 2σ², codebook (K, D), latents (T, D)."""

    num_sources = 2

    def __init__(self, codebook: torch.Tensor, sigma: float, latents: torch.Tensor) -> None:
        codebook = torch.as_tensor(codebook).detach().to(torch.float64)
        latents = torch.as_tensor(latents).detach().to(torch.float64)
        if codebook.dim() != 2:
            raise ValueError(f"codebook must be (K, D); got {tuple(codebook.shape)}")
        if latents.dim() != 2 or latents.shape[1] != codebook.shape[1]:
            raise ValueError(
                f"latents must be (T, D) with D = {codebook.shape[1]}; got {tuple(latents.shape)}"
            )
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0; got {sigma}")
        self.codebook = codebook
        self.latents = latents
        self.sigma = float(sigma)
        k = codebook.shape[0]
        sq = (codebook * codebook).sum(1)
        # ¼‖e_a + e_b‖², (K, K): the part of the distance that does not depend on m.
        self._pair_norms = 0.25 * (sq[:, None] + sq[None, :] + 2.0 * codebook @ codebook.T)
        # Each pair (a, b) is its own "code" of CodeBase: the per-row rescaling and the
        # log-space grids then work as they do for the token form.
        self._pair_codes = torch.arange(k * k).view(k, k)

    @property
    def num_tokens(self) -> int:
        return self.codebook.shape[0]

    @property
    def num_observations(self) -> int:
        """Steps t this likelihood can score: the targets must lie in [0, T)."""
        return self.latents.shape[0]

    def log_prob(self, z1: torch.Tensor, z2: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """-‖m_t - ½(e_z1 + e_z2)‖² / 2σ², float64, broadcast over z1, z2, t."""
        midpoint = 0.5 * (self.codebook[z1] + self.codebook[z2])
        return -(self.latents[t] - midpoint).pow(2).sum(-1) / (2 * self.sigma**2)

    def log_table(self, t: int, weight: float = 1.0) -> torch.Tensor:
        """weight · log L(m_t | a, b) for every pair, (K, K) float64."""
        m = self.latents[t]
        linear = self.codebook @ m  # (K,): m·e_a
        distances = (m @ m) - linear[:, None] - linear[None, :] + self._pair_norms
        return -weight * distances.clamp(min=0.0) / (2 * self.sigma**2)

    def pair_slice(self, targets: torch.Tensor, weight: float) -> PairSlice:
        """L(m_t | a, b)^weight for one shared step t, scaled per row like the token form
        (the best pair of all has weight 1; the samplers narrow it to the reachable pairs)."""
        t = int(targets[0])
        if not bool((targets == t).all()):
            raise ValueError("LatentGaussianLikelihood slices one step per call")
        log_values = self.log_table(t, weight).reshape(-1)  # (K²,) over pairs
        return code_slice(self._pair_codes, log_values, targets.shape[0], float(log_values.max()))
