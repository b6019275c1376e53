"""One step's likelihood over a pair of inputs, in the form every sampler and beam uses.

For a fixed output token (the mixture token, or a sampled partial-mixture token) a
likelihood raised to the weight w is a K×K function of its two inputs (a, b). We write it as

    W_c(a, b) = base(a, b) + Σ_e delta[c, e] · [a = a[c, e], b = b[c, e]]

with `base` shared by all rows (the smoothing floor of a count table, or the Gaussian on
codewords) and a short per-row list of sparse excesses (the observed counts for that
output). W is exact up to a positive constant per row: log W_true = log W + log_offset[c].
Shapes: C rows (candidates or beams), E sparse entries per row, K codes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

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

    def matrix(self, row: int = 0) -> torch.Tensor:
        """base of one row as a dense (K, K) float64 matrix (the same for every row of a table)."""
        ...

    def log_gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """log base[a, b] (for CodeBase: the true log W, without the row offsets)."""
        ...

    def row_sums(self, v: torch.Tensor) -> torch.Tensor:
        """Σ_b base(a, b) · v[c, b] for v (C, K): (C, K) over a."""
        ...


@dataclass(frozen=True)
class TableBase:
    """base given by a stored (K, K) float64 table.

    Optionally also as `constant + correction`, `correction` a sparse CSR (K, K) holding
    table − constant on the seen pairs (a count table's floor is one constant c0 except on
    the few seen pairs): row sums then cost O(C·nnz) instead of a (C, K) × (K, K) product.
    """

    table: torch.Tensor  # (K, K) float64
    is_zero: bool
    constant: float = 0.0
    correction: torch.Tensor | None = None  # sparse CSR (K, K) float64

    def gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _flat_gather(self.table, a, b)

    def log_gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.gather(a, b).log()

    def matrix(self, row: int = 0) -> torch.Tensor:
        return self.table

    def row_sums(self, v: torch.Tensor) -> torch.Tensor:
        """Σ_b table(a, b) v[c, b] (C, K), each entry to a relative error <= _ROW_SUM_RTOL.

        Sparse form: c0·Σ_b v + Σ_(b∈S_a) (table(a, b) − c0)·v. Its rounding error is at
        most ~2K·ε·c0·Σ_b v, whatever the table values (the correction's terms sum in
        absolute value to <= result + c0·Σv). That is negligible unless the true sum is many
        orders below c0·Σv: v on seen pairs only (top-k priors, zeros in a prior) whose
        values are far below c0 (large counts, w > 1). There the difference of two numbers
        of size c0 would be cancellation noise, or 0 — and so would c0·(Σv − Σ_S v), the
        same subtraction written differently. So every entry whose error bound is not
        negligible against its value is recomputed exactly from the dense table, a sum of
        non-negative terms (O(K) each, only where needed).
        """
        if self.correction is None:
            return v @ self.table.T
        total = v.sum(1, keepdim=True)  # (C, 1)
        out = self.constant * total + (self.correction @ v.T).T  # (C, K)
        k = v.shape[1]
        error_bound = self.constant * 2 * k * torch.finfo(torch.float64).eps * total  # (C, 1)
        rows, codes = (error_bound > _ROW_SUM_RTOL * out).nonzero(as_tuple=True)
        step = max(1, _EXACT_VALUES // k)
        for start in range(0, rows.shape[0], step):  # blocks of (row, a) entries, O(K) each
            c, a = rows[start : start + step], codes[start : start + step]
            out[c, a] = (self.table[a] * v[c]).sum(1)
        return out


# Sparse row sums: relative error allowed per entry before it is recomputed exactly.
_ROW_SUM_RTOL = 1e-9
# Values per block of exact recomputation.
_EXACT_VALUES = 1 << 22


class _LogScaled:
    """A base known by its true log W (`log_gather`), scaled per row by `offsets` (C,) so that
    it cannot underflow: base_c = exp(log W − offsets[c]), clipped at 1. `reachable` sets each
    row's offset to the largest log W over the pairs its supports can reach, so the best
    reachable pair has base 1 and a step never looks impossible (the maximum over all pairs
    can sit thousands of nats above every reachable one). Only unreachable pairs (zero prior
    weight) can exceed the offset, hence the clip."""

    offsets: torch.Tensor  # (C,) float64

    @property
    def num_codes(self) -> int:
        raise NotImplementedError

    def log_gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _row_offsets(self, ndim: int) -> torch.Tensor:
        return self.offsets.view(-1, *([1] * (ndim - 1)))

    def gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Row-aligned: the broadcast of a and b has the C rows first."""
        logs = self.log_gather(a, b)
        return (logs - self._row_offsets(logs.dim())).clamp(max=0.0).exp()

    def reachable(
        self,
        left_codes: torch.Tensor,
        left_values: torch.Tensor,
        right_codes: torch.Tensor,
        right_values: torch.Tensor,
    ) -> Any:
        """This base with offsets = max log W over the pairs (a, b) with positive weight on
        both sides. left_codes (C, ka) and left_values (C, ka) > 0 where reachable; same on
        the right."""
        rows, ka = left_codes.shape
        kb = right_codes.shape[1]
        k = self.num_codes
        if ka == k and kb == k:
            # Unrestricted supports (no top-k): a row with every weight positive reaches every
            # pair and keeps the overall maximum; only the other rows need the (ka, kb) grid.
            full = (left_values > 0).all(1) & (right_values > 0).all(1)
            if bool(full.all()):
                return self
            if bool(full.any()):
                part = (~full).nonzero().squeeze(1)
                narrowed = replace(self, offsets=self.offsets[part]).reachable(  # type: ignore[type-var]
                    left_codes[part], left_values[part], right_codes[part], right_values[part]
                )
                offsets = self.offsets.clone()
                offsets[part] = narrowed.offsets
                return replace(self, offsets=offsets)  # type: ignore[type-var]
        if rows * ka * kb <= _GRID_VALUES:
            logs = self.log_gather(left_codes[:, :, None], right_codes[:, None, :])  # (C, ka, kb)
            ok = (left_values > 0)[:, :, None] & (right_values > 0)[:, None, :]
            offsets = logs.masked_fill(~ok, float("-inf")).amax((1, 2))
        else:  # one row at a time; a row that reaches every pair keeps the overall maximum
            offsets = self.offsets.clone()
            for row in range(rows):
                a = left_codes[row][left_values[row] > 0]
                b = right_codes[row][right_values[row] > 0]
                if a.numel() == k and b.numel() == k:
                    continue
                step = max(1, _GRID_VALUES // max(1, b.numel()))
                offsets[row] = max(
                    float(self.log_gather(a[i : i + step, None], b[None, :]).max())
                    for i in range(0, a.numel(), step)
                )
        # A row whose reachable pairs are all impossible (log W = -inf) keeps its offset: its
        # step has no mass either way and falls back, without -inf - -inf = nan in between.
        offsets = torch.where(torch.isfinite(offsets), offsets, self.offsets)
        return replace(self, offsets=offsets)  # type: ignore[type-var]


@dataclass(frozen=True)
class CodeBase(_LogScaled):
    """base_c(a, b) = exp(log_values[codes[a, b]] − offsets[c]): a function of one code per
    pair (the Gaussian likelihood on codewords), scaled per row (see `_LogScaled`)."""

    codes: torch.Tensor  # (K, K) long
    log_values: torch.Tensor  # (K,) float64
    offsets: torch.Tensor  # (C,) float64
    is_zero: bool = False

    @property
    def num_codes(self) -> int:
        return self.codes.shape[0]

    def log_gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The true log W(a, b), no offset, no clipping."""
        return self.log_values[_flat_gather(self.codes, a, b)]

    def matrix(self, row: int = 0) -> torch.Tensor:
        return self._scaled_values(float(self.offsets[row]))[self.codes]

    def _scaled_values(self, offset: float) -> torch.Tensor:
        """exp(log W − offset) per code, (K,), clipped at 1."""
        return (self.log_values - offset).clamp(max=0.0).exp()

    def row_sums(self, v: torch.Tensor) -> torch.Tensor:
        """One (C, K) × (K, K) product at the largest offset, rescaled per row; rows whose
        offset lies more than _SHARED_RANGE nats below it get their own product."""
        reference = float(self.offsets.max())
        shared = self._scaled_values(reference)[self.codes]  # (K, K)
        out = (v @ shared.T) * (reference - self.offsets).exp()[:, None]  # (C, K)
        for row in (reference - self.offsets > _SHARED_RANGE).nonzero().flatten().tolist():
            out[row] = v[row] @ self.matrix(row).T
        return out


@dataclass(frozen=True)
class DenseLogBase(_LogScaled):
    """base_c(a, b) = exp(logs[a, b] − offsets[c]): a dense table of log W (the Gaussian on a
    continuous latent, where every pair has its own value), scaled per row (see
    `_LogScaled`). Like a `CodeBase` whose codes are the pairs themselves, without the
    (K, K) gather per step."""

    logs: torch.Tensor  # (K, K) float64, the true log W
    offsets: torch.Tensor  # (C,) float64
    is_zero: bool = False

    @property
    def num_codes(self) -> int:
        return self.logs.shape[0]

    def log_gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _flat_gather(self.logs, a, b)

    def matrix(self, row: int = 0) -> torch.Tensor:
        return (self.logs - float(self.offsets[row])).clamp(max=0.0).exp()

    def row_sums(self, v: torch.Tensor) -> torch.Tensor:
        """One (C, K) × (K, K) product at the largest offset, rescaled per row; rows whose
        offset lies more than _SHARED_RANGE nats below it get their own product."""
        reference = float(self.offsets.max())
        out = (v @ self.matrix(int(self.offsets.argmax())).T) * (reference - self.offsets).exp()[
            :, None
        ]
        for row in (reference - self.offsets > _SHARED_RANGE).nonzero().flatten().tolist():
            out[row] = v[row] @ self.matrix(row).T
        return out


def dense_log_slice(logs: torch.Tensor, rows: int) -> PairSlice:
    """W(a, b) = exp(logs[a, b]) (K, K) for `rows` rows sharing one output, no sparse part,
    every row scaled by the largest log W (the samplers narrow it to the pairs their
    supports reach); a table of impossible pairs only (all -inf) is scaled by 1."""
    best = float(logs.max())
    offsets = torch.full((rows,), best if best > float("-inf") else 0.0, dtype=torch.float64)
    empty = torch.zeros(rows, 0, dtype=torch.long)
    return PairSlice(
        base=DenseLogBase(logs, offsets),
        a=empty,
        b=empty,
        delta=torch.zeros(rows, 0, dtype=torch.float64),
        log_offset=offsets,
    )


# CodeBase: rows whose offset is this far (nats) below the largest get their own product.
_SHARED_RANGE = 300.0
# CodeBase.reachable: values per vectorised block.
_GRID_VALUES = 1 << 22


@dataclass(frozen=True)
class PairSlice:
    """W_c(a, b) for C rows of one step; see the module docstring."""

    base: PairBase
    a: torch.Tensor  # (C, E) long
    b: torch.Tensor  # (C, E) long
    delta: torch.Tensor  # (C, E) float64, >= 0; 0 on padding
    log_offset: torch.Tensor | float = 0.0  # scalar, or (C,) per row

    @property
    def num_rows(self) -> int:
        return self.a.shape[0]

    def for_weights(
        self,
        left_codes: torch.Tensor,
        left_values: torch.Tensor,
        right_codes: torch.Tensor,
        right_values: torch.Tensor,
    ) -> PairSlice:
        """This slice rescaled per row for the pairs the given supports reach (see CodeBase);
        tables need no rescaling and come back unchanged. Shapes (C, ka), (C, kb)."""
        reachable = getattr(self.base, "reachable", None)
        if reachable is None:
            return self
        base = reachable(left_codes, left_values, right_codes, right_values)
        return replace(self, base=base, log_offset=base.offsets)

    def log_grid(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """log W_true over supports left (C, ka), right (C, kb): (C, ka, kb), -inf where 0."""
        if isinstance(self.base, _LogScaled):  # exact in log space: never underflows
            return self.base.log_gather(left[:, :, None], right[:, None, :])
        offset = torch.as_tensor(self.log_offset, dtype=torch.float64).reshape(-1, 1, 1)
        return self.grid(left, right).log() + offset

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


def code_slice(codes: torch.Tensor, log_values: torch.Tensor, rows: int, best: float) -> PairSlice:
    """W(a, b) = exp(log_values[codes[a, b]]) for `rows` rows sharing one output, no sparse
    part, every row scaled so that `best` (the largest log W any pair can reach) has weight 1;
    the samplers narrow the scale to the pairs their supports reach (`for_weights`)."""
    offsets = torch.full((rows,), float(best), dtype=torch.float64)
    empty = torch.zeros(rows, 0, dtype=torch.long)
    return PairSlice(
        base=CodeBase(codes, log_values, offsets),
        a=empty,
        b=empty,
        delta=torch.zeros(rows, 0, dtype=torch.float64),
        log_offset=offsets,
    )
