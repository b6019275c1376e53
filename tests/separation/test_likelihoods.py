"""Likelihood tables against dense formulas written independently in sep_bruteforce."""

from __future__ import annotations

import itertools

import pytest
import torch
from sep_bruteforce import normalised, random_counts

from latsep.models.likelihood import (
    ChainLikelihood,
    CountLikelihood,
    GaussianLikelihood,
    MarginalLikelihood,
    count_table,
    nearest_midpoints,
)


def slice_matrix(slc, row: int = 0) -> torch.Tensor:
    """Rebuild W(a, b) of one row of a PairSlice densely."""
    w = slc.base.matrix(row).clone()
    w.index_put_((slc.a[row], slc.b[row]), slc.delta[row], accumulate=True)
    offset = torch.as_tensor(slc.log_offset, dtype=torch.float64).reshape(-1)
    return w * offset[row if offset.numel() > 1 else 0].exp()


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_count_likelihood_matches_dense_formula(smoothing):
    g = torch.Generator().manual_seed(0)
    counts = random_counts(6, g, density=0.3)
    counts[2, 4] = 0  # a pair never seen
    lik = CountLikelihood(counts, smoothing)
    expected = normalised(counts, smoothing)
    torch.testing.assert_close(lik.dense(), expected)
    a, b, y = (
        torch.tensor(list(v)) for v in zip(*itertools.product(range(6), repeat=3), strict=True)
    )
    torch.testing.assert_close(lik.log_prob(a, b, y).exp(), expected[a, b, y])
    if smoothing == 0:
        assert lik.dense()[2, 4].sum() == 0  # unseen pair: impossible for every y
    else:
        torch.testing.assert_close(lik.dense()[2, 4], torch.full((6,), 1 / 6, dtype=torch.float64))


def test_sparse_constructor_sums_duplicates():
    g = torch.Generator().manual_seed(1)
    k, nnz = 5, 400
    indices = torch.randint(0, k, (3, nnz), generator=g)  # many duplicate triples
    values = torch.randint(1, 4, (nnz,), generator=g).double()
    dense = torch.zeros(k, k, k, dtype=torch.float64)
    dense.index_put_(tuple(indices), values, accumulate=True)
    sparse = CountLikelihood.from_sparse(indices, values, k, smoothing=0.1)
    torch.testing.assert_close(sparse.dense(), CountLikelihood.from_dense(dense, 0.1).dense())
    torch.testing.assert_close(sparse.dense(), normalised(dense, 0.1))


@pytest.mark.parametrize(("smoothing", "weight"), [(0.0, 1.0), (0.5, 1.0), (0.5, 3.0), (0.2, 0.5)])
def test_pair_slice_is_the_weighted_column(smoothing, weight):
    g = torch.Generator().manual_seed(2)
    counts = random_counts(7, g, density=0.4)
    lik = CountLikelihood(counts, smoothing)
    expected = normalised(counts, smoothing).pow(weight)
    # Mixed outputs (sampled partial mixtures) and one output for every row (the mixture
    # token: a single slice broadcast to the rows) must give the same matrices.
    for targets in (torch.tensor([0, 3, 6, 3]), torch.tensor([5, 5, 5])):
        slc = lik.pair_slice(targets, weight)
        assert slc.num_rows == targets.shape[0]
        for row, y in enumerate(targets.tolist()):
            torch.testing.assert_close(slice_matrix(slc, row), expected[:, :, y])


def test_propagate_is_the_dense_contraction():
    g = torch.Generator().manual_seed(3)
    counts = random_counts(6, g)
    table = CountLikelihood(counts, 0.4).table
    left = torch.rand(3, 6, generator=g, dtype=torch.float64)
    right = torch.rand(3, 6, generator=g, dtype=torch.float64)
    expected = torch.einsum("ca,cb,aby->cy", left, right, normalised(counts, 0.4).pow(2.0))
    torch.testing.assert_close(table.propagate(left, right, 2.0), expected)


@pytest.mark.parametrize("dense", [True, False])
def test_propagate_paths_are_the_dense_contraction(dense, monkeypatch):
    """Most pairs seen: blocks of outer products; few seen: gathers per seen pair. Same sum."""
    # Small blocks, so that several blocks and a ragged last one are exercised (3 codes a or
    # 16 pairs per block at K = 40).
    monkeypatch.setattr(count_table, "_PAIR_CHUNK", 16)
    g = torch.Generator().manual_seed(11)
    k = 40
    nnz = 20_000 if dense else 150
    indices = torch.randint(0, k, (3, nnz), generator=g)
    counts = torch.zeros(k, k, k, dtype=torch.float64)
    counts.index_put_(tuple(indices), torch.ones(nnz, dtype=torch.float64), accumulate=True)
    table = CountLikelihood.from_sparse(indices, torch.ones(nnz), k, 0.2).table
    assert (table.weighted(1.5).dense_chunks is not None) == dense
    left = torch.rand(5, k, generator=g, dtype=torch.float64)
    right = torch.rand(5, k, generator=g, dtype=torch.float64)
    expected = torch.einsum("ca,cb,aby->cy", left, right, normalised(counts, 0.2).pow(1.5))
    torch.testing.assert_close(table.propagate(left, right, 1.5), expected)


def test_large_k_sparse_slice_matches_direct_column():
    """K = 512 > 256: built from COO only; one output's slice equals the formula."""
    g = torch.Generator().manual_seed(4)
    k, nnz = 512, 50_000
    indices = torch.randint(0, k, (3, nnz), generator=g)
    values = torch.ones(nnz)
    lik = CountLikelihood.from_sparse(indices, values, k, smoothing=0.01)
    y = int(indices[2, 0])
    totals = torch.zeros(k, k, dtype=torch.float64)
    totals.index_put_((indices[0], indices[1]), values.double(), accumulate=True)
    column = torch.zeros(k, k, dtype=torch.float64)
    sel = indices[2] == y
    column.index_put_((indices[0, sel], indices[1, sel]), values[sel].double(), accumulate=True)
    expected = ((column + 0.01) / (totals + k * 0.01)).pow(3.0)
    torch.testing.assert_close(slice_matrix(lik.pair_slice(torch.tensor([y]), 3.0)), expected)


@pytest.mark.parametrize("smoothing", [0.0, 0.05])
def test_sparse_floor_and_propagate_at_large_k(smoothing):
    """K = 512 with few seen pairs: the floor runs as constant + sparse correction."""
    g = torch.Generator().manual_seed(9)
    k, nnz = 512, 20_000
    indices = torch.randint(0, k, (3, nnz), generator=g)
    table = CountLikelihood.from_sparse(indices, torch.ones(nnz), k, smoothing).table
    weighted = table.weighted(2.0)
    if smoothing:
        assert weighted.base.correction is not None  # the sparse path is the one under test
    v = torch.rand(3, k, generator=g, dtype=torch.float64)
    torch.testing.assert_close(weighted.base.row_sums(v), v @ weighted.base.matrix().T)
    # propagate against a dense contraction restricted to the outputs' own columns
    left = torch.rand(3, k, generator=g, dtype=torch.float64)
    out = table.propagate(left, v, 2.0)
    # a top-k right side takes the entry path; it must agree with the pair path
    support = torch.stack([torch.randperm(k, generator=g)[:16] for _ in range(3)])
    pruned = torch.zeros_like(v).scatter_(1, support, v.gather(1, support))
    torch.testing.assert_close(
        table.propagate(left, pruned, 2.0, right_support=support),
        table.propagate(left, pruned, 2.0),
    )
    for y in (int(indices[2, 0]), int(indices[2, 1])):
        column = weighted.base.matrix().clone()
        slc = table.pair_slice(torch.tensor([y]), 2.0)
        column.index_put_((slc.a[0], slc.b[0]), slc.delta[0], accumulate=True)
        expected = torch.einsum("ca,ab,cb->c", left, column, v)
        torch.testing.assert_close(out[:, y], expected)


def test_chain_log_prob_sums_out_hidden_levels():
    g = torch.Generator().manual_seed(5)
    levels = [random_counts(4, g) for _ in range(2)]
    chain = ChainLikelihood(levels, smoothing=0.2)
    p = [normalised(level, 0.2) for level in levels]
    z = torch.tensor(list(itertools.product(range(4), repeat=3)))
    y = torch.randint(0, 4, (z.shape[0],), generator=g)
    expected = torch.stack(
        [
            sum(p[0][a, b, m] * p[1][m, c, yy] for m in range(4))
            for (a, b, c), yy in zip(z, y, strict=True)
        ]
    )
    torch.testing.assert_close(chain.log_prob(z, y).exp(), expected)


@pytest.mark.parametrize("smoothing", [0.0, 0.7])
def test_marginal_likelihood_normalises_over_y(smoothing):
    g = torch.Generator().manual_seed(6)
    counts = torch.randint(0, 4, (3, 5, 5), generator=g).double()
    counts[1, 2] = 0  # a code never seen for source 1
    lik = MarginalLikelihood(counts, smoothing)
    expected = normalised(counts, smoothing)  # [source, z, y] over y
    for y in range(5):
        torch.testing.assert_close(lik.column(y), expected[:, :, y])
    z = torch.randint(0, 5, (10, 3), generator=g)
    y = torch.randint(0, 5, (10,), generator=g)
    torch.testing.assert_close(lik.log_prob(z, y).exp(), expected[torch.arange(3), z, y[:, None]])
    indices = counts.nonzero().T
    sparse = MarginalLikelihood.from_sparse(indices, counts[tuple(indices)], 3, 5, smoothing)
    torch.testing.assert_close(sparse.column(2), lik.column(2))


def test_nearest_midpoint_table_matches_brute_force():
    g = torch.Generator().manual_seed(7)
    codebook = torch.randn(16, 3, generator=g, dtype=torch.float64)
    table = nearest_midpoints(codebook)
    for a, b in itertools.product(range(16), repeat=2):
        mid = 0.5 * (codebook[a] + codebook[b])
        distances = ((codebook - mid) ** 2).sum(1)
        # Any code at the minimal distance is right (e_a and e_b tie by construction).
        assert distances[table[a, b]] <= distances.min() + 1e-12
        assert table[a, b] == table[b, a]


def test_gaussian_slice_is_the_weighted_likelihood():
    g = torch.Generator().manual_seed(8)
    codebook = torch.randn(10, 2, generator=g, dtype=torch.float64)
    lik = GaussianLikelihood(codebook, sigma=0.7)
    s = nearest_midpoints(codebook)
    y = 4
    expected_log = -((codebook[y] - codebook[s]) ** 2).sum(-1) / (2 * 0.7**2)  # (K, K)
    a, b = torch.meshgrid(torch.arange(10), torch.arange(10), indexing="ij")
    torch.testing.assert_close(lik.log_prob(a, b, torch.full_like(a, y)), expected_log)
    slc = lik.pair_slice(torch.tensor([y, y]), 3.0)
    torch.testing.assert_close(slice_matrix(slc, 1), (3.0 * expected_log).exp())


def test_invalid_tables_are_rejected():
    with pytest.raises(ValueError):
        CountLikelihood(-torch.ones(3, 3, 3))
    with pytest.raises(ValueError):
        CountLikelihood(torch.ones(3, 3, 4))
    with pytest.raises(ValueError):
        CountLikelihood(torch.ones(3, 3, 3), smoothing=-1)
    with pytest.raises(ValueError):
        MarginalLikelihood(torch.ones(2, 3, 4))
    with pytest.raises(ValueError):
        GaussianLikelihood(torch.ones(3, 2), sigma=0)
