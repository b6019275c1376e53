"""Exact draws of a pair (a, b) ∝ u_c(a) · v_c(b) · W_c(a, b), one per row, all rows at once.

W = base + sparse excess (PairSlice). The total mass splits into the base part and the
sparse part; we pick the part by its mass, then draw inside it:
- base, both sides unrestricted: a from u ⊙ (v @ baseᵀ), then b from v ⊙ base[a] (O(C·K²));
- base, a side restricted to a support: flatten the (C, ka, kb) grid and draw once;
- sparse part: one draw over the row's (C, E) entries u[a_e]·v[b_e]·delta_e.
Rows whose whole mass is zero (every tuple impossible for this output) draw a and b from
u and v alone and are flagged: the fallback rule "likelihood treated as uniform".
A Gaussian slice is first rescaled per row to the pairs the supports reach, so its values
cannot all underflow and a Gaussian step is never mistaken for an impossible one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from latsep.models.likelihood.pair_slice import PairSlice
from latsep.models.separation.weights import SourceWeights


@dataclass(frozen=True)
class PairDraw:
    a: torch.Tensor  # (C,) long
    b: torch.Tensor  # (C,) long
    fallback: torch.Tensor  # (C,) bool
    # (C,) float64: log Σ_(a, b) u(a) v(b) W_true(a, b), the step's mass with the slice's
    # true scale (W_true = W · exp(log_offset)); -inf on fallback rows
    log_mass: torch.Tensor | None = None


def draw_rows(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row ∝ weights (C, M) ≥ 0, by inverse CDF (exact; faster than multinomial).

    Rows with no mass draw uniformly (callers mask them). The draw never lands on a
    zero-weight index: u·total < total picks the first index whose CDF exceeds it, and the
    rare rounding to u·total = total is clamped to the last positive index.
    """
    rows, m = weights.shape
    mass = weights.sum(1, keepdim=True)
    weights = torch.where(mass > 0, weights, torch.ones_like(weights))
    cdf = weights.cumsum(1)  # (C, M)
    u = torch.rand(rows, 1, generator=generator, dtype=cdf.dtype) * cdf[:, -1:]
    index = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp(max=m - 1)  # (C,)
    landed_on_zero = weights.gather(1, index[:, None]).squeeze(1) == 0
    if landed_on_zero.any():  # only after rounding at the very top of the CDF
        last_positive = (m - 1) - (weights > 0).flip(1).to(torch.int8).argmax(1)
        index = torch.where(landed_on_zero, last_positive, index)
    return index


def pair_masses(
    slc: PairSlice, left: SourceWeights, right: SourceWeights
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(base mass (C,), base grid (C, ka, kb) or marginal (C, K) over a, sparse weights (C, E))."""
    u, v = left.values, right.values
    sparse = u.gather(1, slc.a) * v.gather(1, slc.b) * slc.delta  # (C, E)
    # The grid only pays when both sides are pruned (k² values); otherwise the zeros outside
    # a support already restrict the dense path.
    if left.support is None or right.support is None:
        if slc.base.is_zero:
            return torch.zeros(u.shape[0], dtype=torch.float64), None, sparse
        marginal = u * slc.base.row_sums(v)  # (C, K): Σ_b u(a) v(b) base(a, b), all >= 0
        return marginal.sum(1), marginal, sparse
    ia, ib = left.support_or_all(), right.support_or_all()
    grid = slc.base.gather(ia[:, :, None], ib[:, None, :])  # (C, ka, kb)
    grid = grid * left.support_values()[:, :, None] * right.support_values()[:, None, :]
    return grid.sum((1, 2)), grid, sparse


def sample_pairs(
    slc: PairSlice,
    left: SourceWeights,
    right: SourceWeights,
    generator: torch.Generator | None = None,
) -> PairDraw:
    """Draw (a, b) per row exactly from ∝ u(a) v(b) W(a, b); see the module docstring."""
    rows = slc.num_rows
    # Rescale a Gaussian slice to the pairs these supports reach (tables come back as they are).
    slc = slc.for_weights(
        left.support_or_all(), left.support_values(), right.support_or_all(), right.support_values()
    )
    base_mass, base_part, sparse = pair_masses(slc, left, right)
    sparse_mass = sparse.sum(1)
    total = base_mass + sparse_mass
    fallback = ~(total > 0)

    a = torch.zeros(rows, dtype=torch.long)
    b = torch.zeros(rows, dtype=torch.long)
    if base_part is not None:
        if base_part.dim() == 2:  # unrestricted: marginal over a, then b given a
            a_base = draw_rows(base_part, generator)
            conditional = right.values * slc.base.gather(
                a_base[:, None], torch.arange(right.values.shape[1])[None, :]
            )  # (C, K)
            b_base = draw_rows(conditional, generator)
        else:
            ia, ib = left.support_or_all(), right.support_or_all()
            flat = draw_rows(base_part.flatten(1), generator)
            kb = ib.shape[1]
            a_base = ia.gather(1, (flat // kb)[:, None]).squeeze(1)
            b_base = ib.gather(1, (flat % kb)[:, None]).squeeze(1)
        a, b = a_base, b_base
    if sparse.shape[1]:
        entry = draw_rows(sparse, generator)[:, None]
        pick_sparse = torch.rand(rows, generator=generator, dtype=torch.float64) * total >= (
            base_mass
        )
        a = torch.where(pick_sparse, slc.a.gather(1, entry).squeeze(1), a)
        b = torch.where(pick_sparse, slc.b.gather(1, entry).squeeze(1), b)
    if fallback.any():
        a = torch.where(fallback, draw_rows(left.values, generator), a)
        b = torch.where(fallback, draw_rows(right.values, generator), b)
    offset = torch.as_tensor(slc.log_offset, dtype=torch.float64)
    return PairDraw(a, b, fallback, total.log() + offset)
