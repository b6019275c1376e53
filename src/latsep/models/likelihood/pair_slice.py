"""One step's likelihood over a pair of inputs, in the form every sampler and beam uses.

For a fixed output token (the mixture token, or a sampled partial-mixture token) a
likelihood raised to the weight w is a K×K function of its two inputs (a, b). We write it as

    W_c(a, b) = base(a, b) + Σ_e delta[c, e] · [a = a[c, e], b = b[c, e]]

with `base` shared by all rows (the smoothing floor of a count table, or the Gaussian on
codewords) and a short per-row list of sparse excesses (the observed counts for that
output). W is exact up to a positive constant per step: log W_true = log W + log_offset.
Shapes: C rows (candidates or beams), E sparse entries per row, K codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


def _flat_gather(table: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """table[a, b] for broadcastable index tensors, as one index_select on the flat table
    (several times faster than broadcast advanced indexing or take on (C, k, k))."""
    flat = a * table.shape[1] + b
    return table.reshape(-1).index_select(0, flat.reshape(-1)).view(flat.shape)


class PairBase(Protocol):
    """The dense, row-independent part of W."""

    @property
    def is_zero(self) -> bool:
        """True when base is 0 everywhere (a count table without smoothing)."""
        ...

    def gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """base[a, b] for broadcastable LongTensors a, b; float64."""
        ...

    def matrix(self) -> torch.Tensor:
        """base as a dense (K, K) float64 matrix."""
        ...

    def row_sums(self, v: torch.Tensor) -> torch.Tensor:
        """Σ_b base(a, b) · v[c, b] for v (C, K): (C, K) over a."""
        ...


@dataclass(frozen=True)
class TableBase:
    """base given by a stored (K, K) float64 table.

    Optionally also as `constant + correction` with `correction` a sparse CSR (K, K) (a count
    table's floor is one constant except on the seen pairs): then row sums cost O(C·nnz)
    instead of a dense (C, K) × (K, K) product.
    """

    table: torch.Tensor  # (K, K) float64
    is_zero: bool
    constant: float = 0.0
    correction: torch.Tensor | None = None  # sparse CSR (K, K) float64

    def gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _flat_gather(self.table, a, b)

    def matrix(self) -> torch.Tensor:
        return self.table

    def row_sums(self, v: torch.Tensor) -> torch.Tensor:
        if self.correction is None:
            return v @ self.table.T
        return self.constant * v.sum(1, keepdim=True) + (self.correction @ v.T).T


@dataclass(frozen=True)
class CodeBase:
    """base(a, b) = values[codes[a, b]]: a function of one code per pair (Gaussian likelihood)."""

    codes: torch.Tensor  # (K, K) long
    values: torch.Tensor  # (K,) float64
    is_zero: bool = False

    def gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.values[_flat_gather(self.codes, a, b)]

    def matrix(self) -> torch.Tensor:
        return self.values[self.codes]

    def row_sums(self, v: torch.Tensor) -> torch.Tensor:
        return v @ self.matrix().T


@dataclass(frozen=True)
class PairSlice:
    """W_c(a, b) for C rows of one step; see the module docstring."""

    base: PairBase
    a: torch.Tensor  # (C, E) long
    b: torch.Tensor  # (C, E) long
    delta: torch.Tensor  # (C, E) float64, >= 0; 0 on padding
    log_offset: float = 0.0

    @property
    def num_rows(self) -> int:
        return self.a.shape[0]

    def grid(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """W_c(left[c, i], right[c, j]) for supports left (C, ka), right (C, kb): (C, ka, kb)."""
        c, ka = left.shape
        kb = right.shape[1]
        values = self.base.gather(left[:, :, None], right[:, None, :]).clone()  # (C, ka, kb)
        if self.a.shape[1] == 0:
            return values
        k = int(max(int(left.max()), int(right.max()), int(self.a.max()), int(self.b.max()))) + 1
        # Position of every code in each row's support (-1 when outside it).
        pos_a = torch.full((c, k), -1, dtype=torch.long)
        pos_a.scatter_(1, left, torch.arange(ka).expand(c, ka))
        pos_b = torch.full((c, k), -1, dtype=torch.long)
        pos_b.scatter_(1, right, torch.arange(kb).expand(c, kb))
        ia = pos_a.gather(1, self.a)  # (C, E)
        ib = pos_b.gather(1, self.b)
        inside = (ia >= 0) & (ib >= 0)
        flat = torch.where(inside, ia * kb + ib, torch.zeros_like(ia))
        values.view(c, ka * kb).scatter_add_(1, flat, torch.where(inside, self.delta, 0.0))
        return values
