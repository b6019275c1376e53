"""LQ-VAE's likelihood on codewords (`lqvae`).

    log L(y | a, b) = -‖e[y] - e[S(a, b)]‖² / 2σ²,   S(a, b) = the code nearest ½e_a + ½e_b

As in the LQ-VAE paper this is *unnormalised* in y (it is a Gaussian on the codeword of y,
not a distribution over the K codes); sampling only needs it up to a constant per step.
The K×K table S is computed once, vectorised in chunks (K = 2048: 4 M midpoints against
2048 codes), and can be stored in a bundle and passed back as `nearest_midpoint`.
"""

from __future__ import annotations

import torch

from latsep.models.likelihood.latent_gaussian import LatentGaussianLikelihood
from latsep.models.likelihood.pair_slice import PairSlice, code_slice

# (rows of a) × K × K scores per chunk: ≈ 8 M values at a time.
_CHUNK_DISTANCES = 1 << 23


def nearest_midpoints(codebook: torch.Tensor) -> torch.Tensor:
    """S[a, b] = argmin_c ‖½e_a + ½e_b - e_c‖², (K, K) long, symmetric.

    ‖m - e_c‖² = ‖m‖² - (G[a, c] + G[b, c]) + ‖e_c‖² with the Gram matrix G = E Eᵀ, so the
    argmin needs no midpoints at all: one (rows, K, K) broadcast and argmin per chunk of a.
    It is K³ work (≈ 1 min at K = 2048 on 2 cores): compute once, store it in the bundle.
    """
    k = codebook.shape[0]
    # float64 where it is cheap so near-ties resolve as a brute-force check would.
    dtype = torch.float64 if k <= 512 else torch.float32
    e = codebook.to(dtype)  # (K, D)
    gram = e @ e.T  # (K, K)
    sq_norms = (e * e).sum(1)
    gram.diagonal().copy_(sq_norms)  # exact ties between c = a and c = b stay exact
    partial = sq_norms[None, :] - gram  # (K, K): ‖e_c‖² - G[a, c]
    out = torch.empty(k, k, dtype=torch.long)
    rows = max(1, _CHUNK_DISTANCES // (k * k))
    for start in range(0, k, rows):  # chunks of rows bound memory, not a loop over codes
        scores = partial[start : start + rows, None, :] - gram[None, :, :]  # (r, K, K) [a, b, c]
        out[start : start + rows] = scores.argmin(-1)
    # The midpoint of a and b is equidistant from e_a and e_b, so exact ties are common and
    # float error could break them differently for (a, b) and (b, a): mirror one triangle.
    upper = torch.ones(k, k, dtype=torch.bool).triu()
    return torch.where(upper, out, out.T)


class GaussianLikelihood:
    """log L(y | a, b) = -‖e[y] - e[S(a, b)]‖² / 2σ² over a codebook (K, D)."""

    num_sources = 2

    def __init__(
        self,
        codebook: torch.Tensor,
        sigma: float,
        nearest_midpoint: torch.Tensor | None = None,
        latent_sigma: float | None = None,
    ) -> None:
        codebook = torch.as_tensor(codebook).detach().to(torch.float64)
        if codebook.dim() != 2:
            raise ValueError(f"codebook must be (K, D); got {tuple(codebook.shape)}")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0; got {sigma}")
        k = codebook.shape[0]
        self.codebook = codebook
        self.sigma = float(sigma)
        if latent_sigma is not None and not latent_sigma > 0:
            raise ValueError(f"latent_sigma must be > 0; got {latent_sigma}")
        # Set: separation scores the mixture's continuous latent instead of its token
        # (`observing`; σ of the continuous residual, fitted separately from `sigma`).
        self.latent_sigma = None if latent_sigma is None else float(latent_sigma)
        if nearest_midpoint is None:
            nearest_midpoint = nearest_midpoints(codebook)
        self.nearest_midpoint = torch.as_tensor(nearest_midpoint).long()  # (K, K)
        if self.nearest_midpoint.shape != (k, k):
            raise ValueError("nearest_midpoint must be (K, K)")
        self._image = torch.unique(self.nearest_midpoint)  # the codes S(a, b) can produce
        sq = (codebook * codebook).sum(1)
        # ‖e_y - e_s‖² for every pair of codes, (K, K) [y, s].
        self._code_distances = (sq[:, None] + sq[None, :] - 2.0 * codebook @ codebook.T).clamp(
            min=0.0
        )

    @property
    def num_tokens(self) -> int:
        return self.codebook.shape[0]

    def observing(self, tokens: torch.Tensor, latents: torch.Tensor) -> LatentGaussianLikelihood:
        """The continuous form for one mixture's latents (T, D) (its tokens (T,) are not
        needed): its observations are the step indices 0 .. T-1 (see `latent_gaussian`).
        Needs `latent_sigma`."""
        if self.latent_sigma is None:
            raise ValueError("this GaussianLikelihood has no latent_sigma: it observes tokens")
        return LatentGaussianLikelihood(self.codebook, self.latent_sigma, latents)

    def log_prob(self, z1: torch.Tensor, z2: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """-‖e[y] - e[S(z1, z2)]‖² / 2σ², float64."""
        return -self._code_distances[y, self.nearest_midpoint[z1, z2]] / (2 * self.sigma**2)

    def pair_slice(self, targets: torch.Tensor, weight: float) -> PairSlice:
        """L(y | a, b)^weight for one shared target y (the mixture token of this step).

        Each row is scaled so the best pair it can reach has weight 1: by default the best
        pair of all (the maximum over the codes S can produce); the samplers narrow it to the
        pairs their supports reach (`PairSlice.for_weights`), so a step whose reachable
        pairs all lie far from y does not underflow to an "impossible" step.
        """
        y = int(targets[0])
        if not bool((targets == y).all()):
            raise ValueError("GaussianLikelihood slices one mixture token per step")
        log_values = -weight * self._code_distances[y] / (2 * self.sigma**2)  # (K,) over s
        best = float(log_values[self._image].max())
        return code_slice(self.nearest_midpoint, log_values, targets.shape[0], best)
