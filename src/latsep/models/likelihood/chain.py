"""MLASS's chain of count tables over partial mixtures (`mlass-bp`).

Level 0 is [z1, z2, m2]; level l is [m_(l+1), z_(l+2), m_(l+2)]; the last level's output is
the observed mixture token y. m_l is the token of the mean of the first l sources, so
p(y | z_1..z_n) = Σ_(m_2..m_(n-1)) Π_l p_l(m_(l+2) | m_(l+1), z_(l+2)). Each level is
normalised over its output like `CountLikelihood`; with n = 2 this *is* CountLikelihood.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from latsep.models.likelihood.backoff import Backoff, BackoffTable
from latsep.models.likelihood.count_table import CountTable, SparseCounts, as_sparse_counts


class ChainLikelihood:
    """n - 1 levels of raw count tables (dense (K, K, K) or `SparseCounts`) for n sources.

    `backoff` (keyword only) interpolates every level with its backoff distribution (see
    likelihood/backoff.py); with three or more sources use the "mixture" kind, whose
    forward messages cost (C, K) × (K, K) products (the "product" kind costs K³ a row).
    """

    def __init__(
        self, levels: Sequence[object], smoothing: float = 0.0, *, backoff: Backoff | None = None
    ) -> None:
        if len(levels) < 1:
            raise ValueError("a chain needs at least one level (two sources)")
        self.levels: list[CountTable] = [
            CountTable(as_sparse_counts(level), smoothing)
            if backoff is None
            else BackoffTable(as_sparse_counts(level), smoothing, backoff)
            for level in levels
        ]
        sizes = {level.num_tokens for level in self.levels}
        if len(sizes) != 1:
            raise ValueError(f"all levels must share K; got {sorted(sizes)}")

    @classmethod
    def from_sparse(
        cls,
        indices: torch.Tensor | Sequence[torch.Tensor],
        counts: torch.Tensor | Sequence[torch.Tensor],
        num_tokens: int,
        smoothing: float = 0.0,
        *,
        backoff: Backoff | None = None,
    ) -> ChainLikelihood:
        """indices (n_levels, 3, nnz) or a list of (3, nnz_l); counts (n_levels, nnz) or a list."""
        return cls(
            [SparseCounts(i, c, num_tokens) for i, c in zip(indices, counts, strict=True)],
            smoothing,
            backoff=backoff,
        )

    @property
    def num_tokens(self) -> int:
        return self.levels[0].num_tokens

    @property
    def num_sources(self) -> int:
        return len(self.levels) + 1

    @property
    def smoothing(self) -> float:
        return self.levels[0].smoothing

    def log_prob(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log p(y | z_1..z_n) with the hidden partial mixtures summed out; z (B, n), y (B,).

        O(B·n·(K² + nnz)); used for scores and tests, not in the sampling loop.
        """
        k = self.num_tokens
        message = torch.nn.functional.one_hot(z[:, 0], k).double()  # (B, K) over m_1 = z_1
        for level, table in enumerate(self.levels):
            source = torch.nn.functional.one_hot(z[:, level + 1], k).double()
            message = table.propagate(message, source, 1.0)
        return message.gather(1, y[:, None]).squeeze(1).log()
