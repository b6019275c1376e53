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
"target" like a mixture token. Since ‖m - ½(e_a + e_b)‖² = ‖m‖² - m·e_a - m·e_b +
¼(‖e_a‖² + ‖e_b‖²) + ½ e_a·e_b, a step's K×K table of log L is two terms per code added to a
cached pair term -e_a·e_b/4σ² (`DenseLogBase`: no gather, no logarithm per step).
"""

from __future__ import annotations

import torch

from latsep.models.likelihood.pair_slice import PairSlice, dense_log_slice


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
        self._sq_norms = (codebook * codebook).sum(1)
        self._gram = codebook @ codebook.T  # (K, K)
        self._pair_terms: dict[float, torch.Tensor] = {}

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
        """weight · log L(m_t | a, b) for every pair, (K, K) float64:
        left[a] + right[b] + pair[a, b] with c = w/2σ², left[a] = c(m·e_a - ¼‖e_a‖² - ‖m‖²),
        right[b] = c(m·e_b - ¼‖e_b‖²) and the cached pair = -½c e_a·e_b."""
        c = float(weight) / (2 * self.sigma**2)
        m = self.latents[t]
        right = c * (self.codebook @ m - 0.25 * self._sq_norms)  # (K,)
        left = right - c * float(m @ m)
        return (left[:, None] + right[None, :]).add_(self._pair_term(float(weight)))

    def pair_slice(self, targets: torch.Tensor, weight: float) -> PairSlice:
        """L(m_t | a, b)^weight for one shared step t, scaled per row like the token form
        (the best pair of all has weight 1; the samplers narrow it to the reachable pairs)."""
        t = int(targets[0])
        if not bool((targets == t).all()):
            raise ValueError("LatentGaussianLikelihood slices one step per call")
        return dense_log_slice(self.log_table(t, weight), targets.shape[0])

    def _pair_term(self, weight: float) -> torch.Tensor:
        """-½c e_a·e_b (K, K) for this weight: the same at every step."""
        if weight not in self._pair_terms:
            self._pair_terms[weight] = -0.5 * weight / (2 * self.sigma**2) * self._gram
        return self._pair_terms[weight]
