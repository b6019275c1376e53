"""Sparse count tables over the corpus: LASS pair tables, MLASS chain and marginal tables.

Every triple is counted, duplicates included: keys are flattened to one int64
(i·d1 + j)·d2 + k and summed with np.unique/np.bincount, never assigned by index
(which silently keeps one of several equal triples in a batch). Nothing dense of size
K³ is ever built; memory is O(distinct triples seen).

Table names (also the bundle's): "lass:a+b" [z_a, z_b, y], y = code(mean(a, b));
"chain:a+b+c" with levels [z1, z2, m2], [m2, z3, m3], ... (m_l = code of the mean of
the first l sources; the last m is the mixture token); "marginal:a+b+c" [i, z_i, y].
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

EDGE_TOKENS = 2  # tokens dropped at each crop edge, where zero padding bends the encoder


class SparseCounter:
    """Counts of index triples in a (d0, d1, d2) space, kept as sorted unique keys + counts."""

    def __init__(self, shape: tuple[int, int, int], flush_every: int = 1 << 22) -> None:
        self.shape = shape
        self._keys = np.zeros(0, dtype=np.int64)
        self._counts = np.zeros(0, dtype=np.int64)
        self._pending: list[np.ndarray] = []
        self._pending_size = 0
        self._flush_every = flush_every

    def add(self, i: np.ndarray, j: np.ndarray, k: np.ndarray) -> None:
        """Count the triples (i[t], j[t], k[t]); arrays of equal shape, any dimension."""
        d0, d1, d2 = self.shape
        i, j, k = (np.asarray(x, dtype=np.int64).ravel() for x in (i, j, k))
        for x, d in ((i, d0), (j, d1), (k, d2)):
            if x.size and (x.min() < 0 or x.max() >= d):
                raise ValueError(f"index out of range [0, {d})")
        self._pending.append((i * d1 + j) * d2 + k)
        self._pending_size += i.size
        if self._pending_size >= self._flush_every:
            self._flush()

    def add_counts(self, indices: np.ndarray, counts: np.ndarray) -> None:
        """Add counts made earlier: indices (3, nnz) of triples, counts (nnz,)."""
        indices = np.asarray(indices, dtype=np.int64)
        _, d1, d2 = self.shape
        self._flush()
        keys = (indices[0] * d1 + indices[1]) * d2 + indices[2]
        self._combine(keys, np.asarray(counts, dtype=np.int64))

    def merge(self, other: SparseCounter) -> None:
        if other.shape != self.shape:
            raise ValueError("cannot merge counters of different shapes")
        other._flush()
        self._flush()
        self._combine(other._keys, other._counts)

    def _flush(self) -> None:
        if not self._pending:
            return
        keys, counts = np.unique(np.concatenate(self._pending), return_counts=True)
        self._pending, self._pending_size = [], 0
        self._combine(keys, counts.astype(np.int64))

    def _combine(self, keys: np.ndarray, counts: np.ndarray) -> None:
        all_keys = np.concatenate([self._keys, keys])
        unique, inverse = np.unique(all_keys, return_inverse=True)
        summed = np.bincount(inverse, weights=np.concatenate([self._counts, counts]))
        self._keys, self._counts = unique, np.rint(summed).astype(np.int64)

    @property
    def total(self) -> int:
        self._flush()
        return int(self._counts.sum())

    @property
    def nnz(self) -> int:
        self._flush()
        return int(self._keys.size)

    def coo(self) -> tuple[np.ndarray, np.ndarray]:
        """indices (3, nnz) int64 and counts (nnz,) int64, sorted by flattened key."""
        self._flush()
        _, d1, d2 = self.shape
        indices = np.stack(
            [self._keys // (d1 * d2), (self._keys // d2) % d1, self._keys % d2]
        ).astype(np.int64)
        return indices, self._counts.copy()

    def coverage(self, seen: SparseCounter) -> dict[str, float]:
        """How much of this counter's mass (and distinct triples) `seen` has counted."""
        self._flush()
        seen._flush()
        present = np.isin(self._keys, seen._keys, assume_unique=True)
        total = max(int(self._counts.sum()), 1)
        return {
            "weighted": round(float(self._counts[present].sum()) / total, 4),
            "distinct": round(float(present.mean()) if present.size else 0.0, 4),
        }


@dataclass(frozen=True)
class TablePlan:
    """The tables one bundle needs, in the order of its `sources`."""

    sources: tuple[str, ...]
    with_chain: bool  # chain + marginal tables for all sources (MLASS), n ≥ 3

    def names(self) -> list[str]:
        names = [pair_table_name(p) for p in itertools.combinations(self.sources, 2)]
        if self.with_chain:
            names += [chain_table_name(self.sources), marginal_table_name(self.sources)]
        return names


def pair_table_name(sources: Sequence[str]) -> str:
    return "lass:" + "+".join(sources)


def chain_table_name(sources: Sequence[str]) -> str:
    return "chain:" + "+".join(sources)


def marginal_table_name(sources: Sequence[str]) -> str:
    return "marginal:" + "+".join(sources)


class TableCounter:
    """Accumulates every table of a plan from batches of per-crop token arrays."""

    def __init__(self, plan: TablePlan, num_tokens: int) -> None:
        k = num_tokens
        n = len(plan.sources)
        self.plan = plan
        self.num_tokens = k
        self.pairs = {p: SparseCounter((k, k, k)) for p in itertools.combinations(range(n), 2)}
        self.chain = [SparseCounter((k, k, k)) for _ in range(n - 1)] if plan.with_chain else []
        self.marginal = SparseCounter((n, k, k)) if plan.with_chain else None

    def add(
        self,
        sources: np.ndarray,
        pair_means: dict[tuple[int, int], np.ndarray],
        partial_means: list[np.ndarray],
    ) -> None:
        """sources (B, N, T): z_i; pair_means[(i, j)] (B, T): code of mean(x_i, x_j);
        partial_means[l] (B, T): m_(l+2), code of the mean of the first l + 2 sources."""
        for (i, j), counter in self.pairs.items():
            counter.add(sources[:, i], sources[:, j], pair_means[(i, j)])
        if self.plan.with_chain:
            self.chain[0].add(sources[:, 0], sources[:, 1], partial_means[0])
            for level in range(1, len(self.chain)):
                self.chain[level].add(
                    partial_means[level - 1], sources[:, level + 1], partial_means[level]
                )
            mixture = partial_means[-1]  # (B, T)
            n = sources.shape[1]
            which = np.broadcast_to(np.arange(n)[None, :, None], sources.shape)
            assert self.marginal is not None
            self.marginal.add(which, sources, np.broadcast_to(mixture[:, None], sources.shape))

    def tables(self) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
        """name → list of COO levels (one level except for chains)."""
        out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        names = self.plan.sources
        for (i, j), counter in self.pairs.items():
            out[pair_table_name((names[i], names[j]))] = [counter.coo()]
        if self.plan.with_chain:
            out[chain_table_name(names)] = [c.coo() for c in self.chain]
            assert self.marginal is not None
            out[marginal_table_name(names)] = [self.marginal.coo()]
        return out

    def absorb(self, tables: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> None:
        """Add counts counted earlier (a shipped bundle's tables, same plan and codec), so a
        new count run accumulates onto them. Every table of the plan must be present."""
        for name, counters in self.counters().items():
            if name not in tables or len(tables[name]) != len(counters):
                raise ValueError(f"earlier counts lack table {name} (or its levels)")
            for counter, (indices, counts) in zip(counters, tables[name], strict=True):
                counter.add_counts(indices, counts)

    def counters(self) -> dict[str, list[SparseCounter]]:
        names = self.plan.sources
        out = {pair_table_name((names[i], names[j])): [c] for (i, j), c in self.pairs.items()}
        if self.plan.with_chain:
            out[chain_table_name(names)] = list(self.chain)
            assert self.marginal is not None
            out[marginal_table_name(names)] = [self.marginal]
        return out


@torch.inference_mode()
def encode_crops(
    codec: torch.nn.Module,
    crops: torch.Tensor,
    plan: TablePlan,
    chunk: int = 64,
    *,
    bf16: bool = False,
) -> tuple[np.ndarray, dict[tuple[int, int], np.ndarray], list[np.ndarray]]:
    """Tokens of crops (B, N, L): sources (B, N, T), pair means, partial means; edges trimmed.
    bf16: the codec's encoder under bf16 autocast (its `encode(..., bf16=True)`)."""
    b, n, _ = crops.shape
    signals = [crops[:, i] for i in range(n)]
    pairs = list(itertools.combinations(range(n), 2))
    signals += [0.5 * (crops[:, i] + crops[:, j]) for i, j in pairs]
    partial_levels = list(range(3, n + 1)) if plan.with_chain else []
    signals += [crops[:, :level].mean(dim=1) for level in partial_levels]
    audio = torch.cat(signals)  # (S·B, L)
    options = {"bf16": True} if bf16 else {}
    tokens = torch.cat([codec.encode(part, **options) for part in audio.split(chunk)])  # (S·B, T)
    t = tokens.shape[1]
    if t > 4 * EDGE_TOKENS:
        tokens = tokens[:, EDGE_TOKENS : t - EDGE_TOKENS]
    tokens_np = tokens.cpu().numpy().reshape(len(signals), b, -1)  # (S, B, T)
    sources = tokens_np[:n].transpose(1, 0, 2)  # (B, N, T)
    pair_means = {p: tokens_np[n + k] for k, p in enumerate(pairs)}
    partial = []
    if plan.with_chain:
        partial = [pair_means[(0, 1)]] + [
            tokens_np[n + len(pairs) + k] for k in range(len(partial_levels))
        ]
    return sources, pair_means, partial
