"""LASS's discrete likelihood p(y | z1, z2) from a K×K×K count table (`lass`, `hybrid`)."""

from __future__ import annotations

import torch

from latsep.models.likelihood.backoff import Backoff, BackoffTable
from latsep.models.likelihood.count_table import CountTable, SparseCounts, as_sparse_counts
from latsep.models.likelihood.latent_count import LatentCountLikelihood
from latsep.models.likelihood.latent_gaussian import LatentGaussianLikelihood
from latsep.models.likelihood.pair_slice import PairSlice


class CountLikelihood:
    """p(y | z1, z2) = (c[z1, z2, y] + s) / (Σ_y' c[z1, z2, y'] + K·s); index order [z1, z2, y].

    `counts` are raw counts: a dense (K, K, K) tensor/array, or `SparseCounts` (use
    `from_sparse` for the COO form the count builder writes). Pairs never seen with
    smoothing 0 are impossible (probability 0 for every y).

    `backoff` (keyword only) replaces additive smoothing by interpolation with a backoff
    distribution built from the table's marginals (see likelihood/backoff.py); `smoothing`
    then smooths those marginals.
    """

    num_sources = 2

    def __init__(
        self,
        counts: object,
        smoothing: float = 0.0,
        *,
        backoff: Backoff | None = None,
        latent_codebook: torch.Tensor | None = None,
        latent_sigma: float | None = None,
    ) -> None:
        if (latent_codebook is None) != (latent_sigma is None):
            raise ValueError("latent_codebook and latent_sigma come together")
        if latent_sigma is not None and not latent_sigma > 0:
            raise ValueError(f"latent_sigma must be > 0; got {latent_sigma}")
        # Set: separation also scores the mixture's continuous latent (`observing`, hybrid).
        self.latent_codebook = latent_codebook
        self.latent_sigma = None if latent_sigma is None else float(latent_sigma)
        sparse = as_sparse_counts(counts)
        self.table = (
            CountTable(sparse, smoothing)
            if backoff is None
            else BackoffTable(sparse, smoothing, backoff)
        )

    @classmethod
    def from_dense(cls, counts: object, smoothing: float = 0.0) -> CountLikelihood:
        return cls(counts, smoothing)

    @classmethod
    def from_sparse(
        cls,
        indices: torch.Tensor,
        counts: torch.Tensor,
        num_tokens: int,
        smoothing: float = 0.0,
        *,
        backoff: Backoff | None = None,
        latent_codebook: torch.Tensor | None = None,
        latent_sigma: float | None = None,
    ) -> CountLikelihood:
        """indices (3, nnz) rows [z1, z2, y]; counts (nnz,); duplicates are summed."""
        return cls(
            SparseCounts(indices, counts, num_tokens),
            smoothing,
            backoff=backoff,
            latent_codebook=latent_codebook,
            latent_sigma=latent_sigma,
        )

    @property
    def num_tokens(self) -> int:
        return self.table.num_tokens

    @property
    def smoothing(self) -> float:
        return self.table.smoothing

    def observing(self, tokens: torch.Tensor, latents: torch.Tensor) -> LatentCountLikelihood:
        """This table times the Gaussian on one mixture's latents (T, D), its tokens (T,)
        the table's outputs; observations are the step indices (see `latent_count`)."""
        if self.latent_codebook is None or self.latent_sigma is None:
            raise ValueError("this CountLikelihood has no latent_sigma: it observes tokens")
        latent = LatentGaussianLikelihood(self.latent_codebook, self.latent_sigma, latents)
        return LatentCountLikelihood(self, latent, tokens)

    def log_prob(self, z1: torch.Tensor, z2: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log p(y | z1, z2), float64, -inf for impossible tuples."""
        return self.table.prob(z1, z2, y).log()

    def pair_slice(self, targets: torch.Tensor, weight: float) -> PairSlice:
        """p(targets[c] | a, b)^weight per row c; targets (C,)."""
        return self.table.pair_slice(targets, weight)

    def dense(self) -> torch.Tensor:
        """p(y | z1, z2) as (K, K, K) [z1, z2, y]; small K only."""
        return self.table.dense()
