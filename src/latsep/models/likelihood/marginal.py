"""MLASS-PE's per-source likelihoods p(y | z_i) from counts [source, z_i, y] (`mlass-pe`)."""

from __future__ import annotations

import numpy as np
import torch


class MarginalLikelihood:
    """p(y | z_i) = (c[i, z_i, y] + s) / (Σ_y' c[i, z_i, y'] + K·s), normalised over y.

    (The public MLASS code normalises over z; we do not.) A z_i never seen with smoothing 0
    is impossible. n·K² is small enough to keep dense, and counts stay float64 (integers are
    exact up to 2^53; float32 would round counts above 2^24): 134 MB at n = 4, K = 2048.
    """

    def __init__(self, counts: object, smoothing: float = 0.0) -> None:
        dense = torch.as_tensor(counts if torch.is_tensor(counts) else np.asarray(counts))
        if dense.dim() != 3 or dense.shape[1] != dense.shape[2]:
            raise ValueError(f"counts must be (n, K, K); got {tuple(dense.shape)}")
        if smoothing < 0 or not np.isfinite(smoothing):
            raise ValueError(f"smoothing must be a finite number >= 0; got {smoothing}")
        dense = dense.to(torch.float64)
        if (dense < 0).any() or not torch.isfinite(dense).all():
            raise ValueError("counts must be finite and non-negative")
        self.smoothing = float(smoothing)
        k = dense.shape[1]
        # Column-major over y so the per-step slice [:, :, y] is one contiguous read.
        self._counts_by_y = dense.permute(2, 0, 1).contiguous()  # (K, n, K) [y, i, z] float64
        denominator = dense.sum(2) + k * self.smoothing  # (n, K)
        self._possible = denominator > 0
        self._denominator = torch.where(self._possible, denominator, torch.ones_like(denominator))

    @classmethod
    def from_sparse(
        cls,
        indices: torch.Tensor,
        counts: torch.Tensor,
        num_sources: int,
        num_tokens: int,
        smoothing: float = 0.0,
    ) -> MarginalLikelihood:
        """indices (3, nnz) rows [source, z, y]; counts (nnz,); duplicates are summed."""
        indices = torch.as_tensor(indices).long()
        counts = torch.as_tensor(counts).double()
        if (
            indices.dim() != 2
            or indices.shape[0] != 3
            or indices.shape[1] != counts.reshape(-1).shape[0]
        ):
            raise ValueError("indices must be (3, nnz) with one count per column")
        limits = torch.tensor([num_sources, num_tokens, num_tokens])[:, None]
        if indices.numel() and ((indices < 0).any() or (indices >= limits).any()):
            raise ValueError(
                f"indices out of range: source in [0, {num_sources}), z and y in [0, {num_tokens})"
            )
        dense = torch.zeros(num_sources, num_tokens, num_tokens, dtype=torch.float64)
        dense.index_put_(tuple(indices), counts.reshape(-1), accumulate=True)
        return cls(dense, smoothing)

    @property
    def num_sources(self) -> int:
        return self._denominator.shape[0]

    @property
    def num_tokens(self) -> int:
        return self._denominator.shape[1]

    def column(self, y: int) -> torch.Tensor:
        """p(y | z_i) for every source and code, (n, K) float64."""
        p = (self._counts_by_y[y] + self.smoothing) / self._denominator
        return torch.where(self._possible, p, 0.0)

    def columns(self, ys: torch.Tensor) -> torch.Tensor:
        """`column` for each of the observations ys (T,): (T, n, K) float64."""
        p = (self._counts_by_y[ys.long()] + self.smoothing) / self._denominator
        return torch.where(self._possible, p, 0.0)

    def log_prob(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log p(y | z_i) per source; z (B, n), y (B,) -> (B, n)."""
        counts = self._counts_by_y[y[:, None], torch.arange(z.shape[1]), z]  # (B, n)
        sources = torch.arange(z.shape[1]).expand_as(z)
        p = (counts + self.smoothing) / self._denominator[sources, z]
        return torch.where(self._possible[sources, z], p, 0.0).log()
