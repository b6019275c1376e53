"""Count tables interpolated with a backoff distribution built from their own marginals.

Additive smoothing makes rare pairs over-confident and gives every unseen pair the uniform
1/K: only 14 % of the K² pairs (a, b) of the shipped plain table are seen at all, half of
them three times or fewer. Interpolating with a distribution that knows what each input
alone says about y fixes both:

    p(y | a, b) = (c(a, b, y) + β · q(y | a, b)) / (N(a, b) + β)

A pair seen N times trusts its counts in proportion N / (N + β); an unseen pair is q alone.
q comes from the same table (no new data), in one of two forms:

- "product" (of experts): q(y | a, b) = p1(y | a) · p2(y | b) / p(y) / Z(a, b), the naive
  Bayes combination: y must be likely under both inputs. Z(a, b) = Σ_y p1 p2 / p is one
  K×K product at build time; for one output y the base term is u(a)·v(b)·G(a, b), so a
  sampling step is still one (C, K) × (K, K) product.
- "mixture": q(y | a, b) = ½ (p1(y | a) + p2(y | b)). Less sharp, but a chain's forward
  message (every output y at once) stays four (C, K) × (K, K) products, where the product
  form would cost K³ per candidate. `mlass-bp` with three or more sources uses it.

p1(y | a), p2(y | b) and p(y) are the table's marginals with the additive pseudo-count s
(smoothing > 0 is required, so q > 0 and every tuple is possible). For the engine the table
is split like a plain count table: W_c(a, b) = p(y_c | a, b)^w = base_c(a, b) + sparse
excesses at the stored triples, the base now depending on the row's output y_c.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from latsep.models.likelihood.count_table import CountTable, SparseCounts, WeightedTable
from latsep.models.likelihood.pair_slice import PairSlice

KINDS = ("product", "mixture")
# Rows per block where a base is built as dense (rows, K, K) values (general weights).
_BLOCK_VALUES = 1 << 22


@dataclass(frozen=True)
class Backoff:
    """Interpolate counts with strength β (pseudo-observations of q per pair) and q's form."""

    strength: float
    kind: str = "product"

    def __post_init__(self) -> None:
        if not (self.strength > 0 and self.strength < float("inf")):
            raise ValueError(f"backoff strength must be a finite number > 0; got {self.strength}")
        if self.kind not in KINDS:
            raise ValueError(f"backoff kind must be one of {KINDS}; got {self.kind!r}")


class BackoffTable(CountTable):
    """A CountTable whose p(y | a, b) is the backoff interpolation of the module docstring."""

    def __init__(self, counts: SparseCounts, smoothing: float, backoff: Backoff) -> None:
        if not smoothing > 0:
            raise ValueError("a backoff table needs smoothing > 0 for its marginals")
        super().__init__(counts, 0.0)  # the sorted entries, CSR over y, row totals N(a, b)
        self.smoothing = float(smoothing)
        self.backoff = backoff
        k, s, beta = self.num_tokens, self.smoothing, backoff.strength
        by_left = torch.zeros(k, k, dtype=torch.float64)  # c1[a, y]
        by_left.index_put_((self.left, self.out), self.counts, accumulate=True)
        by_right = torch.zeros(k, k, dtype=torch.float64)  # c2[b, y]
        by_right.index_put_((self.right, self.out), self.counts, accumulate=True)
        self.p_left = (by_left + s) / (by_left.sum(1, keepdim=True) + k * s)  # p1(y | a), (a, y)
        self.p_right = (by_right + s) / (by_right.sum(1, keepdim=True) + k * s)  # p2(y | b)
        outputs = by_left.sum(0)
        self.p_out = (outputs + s) / (outputs.sum() + k * s)  # p(y)
        self.trust = beta / (self.totals + beta)  # β / (N + β), (K, K)
        if backoff.kind == "product":
            ratio = self.p_left / self.p_out  # (a, y): p1 / p
            self.normaliser = ratio @ self.p_right.T  # Z(a, b)
        entry_q = self.q(self.left, self.right, self.out)
        self._entry_prob = (self.counts + beta * entry_q) / (
            self.totals[self.left, self.right] + beta
        )
        self._entry_base = self.trust[self.left, self.right] * entry_q  # β q / (N + β)
        self._possible = torch.ones(k, k, dtype=torch.bool)
        self._weighted = {}
        self._factors: dict[tuple[str, float], tuple[torch.Tensor, ...]] = {}

    def q(self, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The backoff distribution q(y | a, b) for broadcastable LongTensors; float64."""
        if self.backoff.kind == "product":
            joint = self.p_left[a, y] * self.p_right[b, y] / self.p_out[y]
            return joint / self.normaliser[a, b]
        return 0.5 * (self.p_left[a, y] + self.p_right[b, y])

    def weighted(self, weight: float) -> WeightedTable:
        weight = float(weight)
        if weight not in self._weighted:
            delta = (self._entry_prob.pow(weight) - self._entry_base.pow(weight)).clamp(min=0.0)
            self._weighted[weight] = WeightedTable.assemble(self, None, delta)
        return self._weighted[weight]

    def prob(self, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b, y = torch.broadcast_tensors(
            torch.as_tensor(a), torch.as_tensor(b), torch.as_tensor(y)
        )
        counts = self.stored_counts(a, b, y)
        beta = self.backoff.strength
        return (counts + beta * self.q(a, b, y)) / (self.totals[a, b] + beta)

    def pair_slice(self, targets: torch.Tensor, weight: float) -> PairSlice:
        """W_c(a, b) = p(targets[c] | a, b)^w: the stored entries of the plain table's slice,
        over this table's per-row base."""
        return replace(super().pair_slice(targets, weight), base=self.base(targets, weight))

    def base(self, targets: torch.Tensor, weight: float) -> ProductBase | MixtureBase:
        """The rows' base (β q(y_c | a, b) / (N + β))^w for outputs targets (C,)."""
        if self.backoff.kind == "product":
            u, v, g = self._product_factors(float(weight))
            return ProductBase(u[targets], v[targets], g)
        return MixtureBase(
            self.p_left.T[targets], self.p_right.T[targets], self.trust, float(weight)
        )

    def _product_factors(self, weight: float) -> tuple[torch.Tensor, ...]:
        """(u[y, a], v[y, b], g[a, b]) with base_y(a, b) = u·v·g, each raised to the weight."""
        key = ("product", weight)
        if key not in self._factors:
            u = (self.p_left / self.p_out).T  # (y, a)
            v = self.p_right.T  # (y, b)
            g = self.trust / self.normaliser  # (a, b)
            self._factors[key] = tuple(x.pow(weight).contiguous() for x in (u, v, g))
        return self._factors[key]

    def base_messages(
        self, left: torch.Tensor, right: torch.Tensor, weight: float, table: WeightedTable
    ) -> torch.Tensor:
        """Σ_(a, b) left[c, a] · right[c, b] · base_y(a, b) for every output y: (C, K).

        The mixture at w = 1 in four (C, K) × (K, K) products; anything else exactly by
        blocks of outputs (K³ per row: small K, tests, or a user's explicit choice).
        """
        if self.backoff.kind == "mixture" and weight == 1.0:
            half = 0.5 * self.trust
            through_right = left * (right @ half.T)  # Σ_b H(a, b) right(b), times left(a)
            through_left = right * (left @ half)  # Σ_a H(a, b) left(a), times right(b)
            return through_right @ self.p_left + through_left @ self.p_right
        k = self.num_tokens
        out = torch.zeros(left.shape[0], k, dtype=torch.float64)
        step = max(1, _BLOCK_VALUES // (k * k))
        for start in range(0, k, step):
            ys = torch.arange(start, min(k, start + step))
            base = self.base(ys, weight)
            for i, y in enumerate(ys.tolist()):
                out[:, y] = ((left @ base.matrix(i)) * right).sum(1)
        return out

    def dense(self) -> torch.Tensor:
        k = self.num_tokens
        if k > 256:
            raise ValueError("dense() would build a K³ tensor; only for K <= 256")
        a, b, y = torch.meshgrid(torch.arange(k), torch.arange(k), torch.arange(k), indexing="ij")
        return self.prob(a, b, y)


def _row_gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values[c, index[c, ...]] for values (C, K) and index with C (or 1) leading rows."""
    rows = index.shape[0]
    if rows != values.shape[0]:
        index = index.expand(values.shape[0], *index.shape[1:])
        rows = values.shape[0]
    return values.gather(1, index.reshape(rows, -1)).view(index.shape)


@dataclass(frozen=True)
class ProductBase:
    """Row-aligned base_c(a, b) = u[c, a] · v[c, b] · g[a, b] (product backoff, to the weight)."""

    u: torch.Tensor  # (C, K)
    v: torch.Tensor  # (C, K)
    g: torch.Tensor  # (K, K)
    is_zero: bool = False

    def gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Row-aligned: the broadcast of a and b has the C rows first."""
        a, b = torch.broadcast_tensors(a, b)
        flat = (a * self.g.shape[1] + b).reshape(-1)
        g = self.g.reshape(-1).index_select(0, flat).view(a.shape)
        return _row_gather(self.u, a) * _row_gather(self.v, b) * g

    def log_gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.gather(a, b).log()

    def matrix(self, row: int = 0) -> torch.Tensor:
        return self.u[row][:, None] * self.v[row][None, :] * self.g

    def row_sums(self, v: torch.Tensor) -> torch.Tensor:
        """Σ_b base_c(a, b) v[c, b] = u[c, a] · Σ_b g(a, b) (v ⊙ v_c)(b): one (C, K) × (K, K)."""
        return self.u * ((v * self.v) @ self.g.T)


@dataclass(frozen=True)
class MixtureBase:
    """Row-aligned base_c(a, b) = (h[a, b] · ½ (p1[c, a] + p2[c, b]))^w (mixture backoff)."""

    p1: torch.Tensor  # (C, K) p1(y_c | a)
    p2: torch.Tensor  # (C, K) p2(y_c | b)
    h: torch.Tensor  # (K, K) β / (N + β)
    weight: float
    is_zero: bool = False

    def gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = torch.broadcast_tensors(a, b)
        flat = (a * self.h.shape[1] + b).reshape(-1)
        h = self.h.reshape(-1).index_select(0, flat).view(a.shape)
        values = h * 0.5 * (_row_gather(self.p1, a) + _row_gather(self.p2, b))
        return values if self.weight == 1.0 else values.pow(self.weight)

    def log_gather(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.gather(a, b).log()

    def matrix(self, row: int = 0) -> torch.Tensor:
        values = self.h * 0.5 * (self.p1[row][:, None] + self.p2[row][None, :])
        return values if self.weight == 1.0 else values.pow(self.weight)

    def row_sums(self, v: torch.Tensor) -> torch.Tensor:
        if self.weight == 1.0:  # ½ p1(a) Σ_b h v + ½ Σ_b h p2 v: two (C, K) × (K, K)
            return 0.5 * (self.p1 * (v @ self.h.T) + (v * self.p2) @ self.h.T)
        k = self.h.shape[0]
        out = torch.empty_like(v)
        step = max(1, _BLOCK_VALUES // (k * k))
        for start in range(0, v.shape[0], step):
            rows = slice(start, start + step)
            values = self.h * 0.5 * (self.p1[rows, :, None] + self.p2[rows, None, :])
            out[rows] = (values.pow(self.weight) @ v[rows, :, None]).squeeze(2)
        return out
