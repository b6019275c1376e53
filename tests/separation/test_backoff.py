"""Backoff-interpolated count tables: a normalised p(y | a, b) for every pair, the engine's
fast forms equal to the dense table, and exact sampling / MAP under it (brute force)."""

from __future__ import annotations

import itertools

import pytest
import torch
from sep_bruteforce import (
    assert_samples_match,
    chain_posterior,
    flat_index,
    prior_probs,
    random_counts,
    random_priors,
)
from test_beam import all_paths, path_scores
from test_sampling_exact import DRAWS, draw, pair_posterior

from latsep.models.likelihood import Backoff, ChainLikelihood, CountLikelihood
from latsep.models.likelihood.backoff import BackoffTable
from latsep.models.likelihood.count_table import as_sparse_counts
from latsep.models.separation import separate

KINDS = ("product", "mixture")


def reference(counts: torch.Tensor, smoothing: float, beta: float, kind: str) -> torch.Tensor:
    """p(y | a, b) [a, b, y] by the formula, loop by loop (written independently)."""
    counts = counts.double()
    k = counts.shape[0]
    c1 = counts.sum(1)  # [a, y]
    c2 = counts.sum(0)  # [b, y]
    cy = counts.sum((0, 1))
    p = torch.zeros(k, k, k, dtype=torch.float64)
    for a, b in itertools.product(range(k), repeat=2):
        p1 = [(c1[a, y] + smoothing) / (c1[a].sum() + k * smoothing) for y in range(k)]
        p2 = [(c2[b, y] + smoothing) / (c2[b].sum() + k * smoothing) for y in range(k)]
        py = [(cy[y] + smoothing) / (cy.sum() + k * smoothing) for y in range(k)]
        if kind == "product":
            q = torch.tensor([p1[y] * p2[y] / py[y] for y in range(k)], dtype=torch.float64)
            q = q / q.sum()
        else:
            q = torch.tensor([0.5 * (p1[y] + p2[y]) for y in range(k)], dtype=torch.float64)
        p[a, b] = (counts[a, b] + beta * q) / (counts[a, b].sum() + beta)
    return p


def table_with_gaps(k: int, seed: int) -> torch.Tensor:
    """Random counts with unseen pairs, one code never seen as input, one output never seen."""
    counts = random_counts(k, torch.Generator().manual_seed(seed), density=0.4)
    counts[k - 1] = 0  # a = K-1 never seen on the left
    counts[:, :, 0] = 0  # y = 0 never seen
    return counts


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("smoothing", "beta"), [(0.01, 16.0), (0.5, 0.3)])
def test_every_row_is_the_formula_and_sums_to_one(kind, smoothing, beta):
    counts = table_with_gaps(6, 1)
    table = BackoffTable(as_sparse_counts(counts), smoothing, Backoff(beta, kind))
    dense = table.dense()
    torch.testing.assert_close(dense, reference(counts, smoothing, beta, kind))
    torch.testing.assert_close(dense.sum(2), torch.ones(6, 6, dtype=torch.float64))
    assert bool((dense > 0).all())  # every tuple possible: no fallback steps


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("weight", [1.0, 2.5])
def test_pair_slices_and_row_sums_equal_the_dense_table(kind, weight):
    k = 5
    counts = table_with_gaps(k, 2)
    table = BackoffTable(as_sparse_counts(counts), 0.1, Backoff(4.0, kind))
    dense = reference(counts, 0.1, 4.0, kind).pow(weight)  # [a, b, y]
    targets = torch.tensor([0, 3, 3, 1, 4])  # per-row outputs, as in a chain's backward pass
    slc = table.pair_slice(targets, weight)
    codes = torch.arange(k).expand(len(targets), k)
    grid = slc.grid(codes, codes)  # (C, K, K)
    torch.testing.assert_close(grid, dense[:, :, targets].permute(2, 0, 1))
    v = torch.rand(len(targets), k, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    base = torch.stack([slc.base.matrix(c) for c in range(len(targets))])
    torch.testing.assert_close(slc.base.row_sums(v), (base @ v[:, :, None]).squeeze(2))
    # One shared output (the pair samplers' case) gives the same slices, broadcast.
    same = table.pair_slice(torch.full((3,), 3), weight)
    torch.testing.assert_close(same.grid(codes[:3], codes[:3]), dense[:, :, 3].expand(3, k, k))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("weight", [1.0, 2.0])
def test_propagate_sums_every_pair_for_every_output(kind, weight):
    k = 6
    counts = table_with_gaps(k, 3)
    table = BackoffTable(as_sparse_counts(counts), 0.05, Backoff(8.0, kind))
    dense = reference(counts, 0.05, 8.0, kind).pow(weight)
    g = torch.Generator().manual_seed(1)
    left = torch.rand(3, k, dtype=torch.float64, generator=g)
    right = torch.rand(3, k, dtype=torch.float64, generator=g)
    expected = torch.einsum("ca,cb,aby->cy", left, right, dense)
    torch.testing.assert_close(table.propagate(left, right, weight), expected)
    pruned = right.clone()
    pruned[:, 2:] = 0.0  # a top-k-like support
    expected = torch.einsum("ca,cb,aby->cy", left, pruned, dense)
    got = table.propagate(left, pruned, weight, right_support=torch.tensor([[0, 1]] * 3))
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("weight", [1.0, 3.0])
def test_lass_samples_the_backoff_posterior(kind, weight):
    g = torch.Generator().manual_seed(20)
    k = 5
    counts = table_with_gaps(k, 4)
    priors = random_priors(2, k, g)
    y = 2
    likelihood = CountLikelihood(counts, 0.2, backoff=Backoff(3.0, kind))
    result = draw("lass", priors, likelihood, y, likelihood_weight=weight)
    expected = pair_posterior(priors, reference(counts, 0.2, 3.0, kind), y, weight)
    assert_samples_match(flat_index(result.tokens[:, :, 0], k), expected.numpy())
    assert int(result.fallback_steps.sum()) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_mlass_bp_three_sources_samples_the_backoff_chain(kind):
    g = torch.Generator().manual_seed(21)
    k = 4
    levels = [table_with_gaps(k, 5), table_with_gaps(k, 6)]
    priors = random_priors(3, k, g)
    y = 1
    likelihood = ChainLikelihood(levels, 0.1, backoff=Backoff(5.0, kind))
    result = draw("mlass-bp", priors, likelihood, y)
    expected = chain_posterior(
        [prior_probs(p) for p in priors], [reference(c, 0.1, 5.0, kind) for c in levels], y
    )
    assert_samples_match(flat_index(result.tokens[:, :, 0], k), expected.numpy())
    assert result.tokens.shape == (DRAWS, 3, 1)


def test_exhaustive_beam_under_backoff_returns_every_path_in_score_order():
    g = torch.Generator().manual_seed(22)
    k, steps = 3, 3
    counts = table_with_gaps(k, 7)
    likelihood = CountLikelihood(counts, 0.1, backoff=Backoff(2.0, "product"))
    dense = reference(counts, 0.1, 2.0, "product")

    class Reference:  # log L from the independent dense table
        @staticmethod
        def log_prob(a, b, y):
            return dense[a, b, y].log()

    priors = random_priors(2, k, g)
    y = torch.randint(0, k, (steps,), generator=g)
    paths = all_paths(k, steps)
    expected = path_scores(priors, Reference, y, paths, 2.0).sort(descending=True).values
    result = separate(
        "lass", priors, likelihood, y, search="beam", num_candidates=len(paths),
        likelihood_weight=2.0,
    )  # fmt: skip
    torch.testing.assert_close(result.log_scores, expected)


def test_backoff_needs_a_positive_strength_a_known_kind_and_smoothing():
    with pytest.raises(ValueError, match="strength"):
        Backoff(0.0)
    with pytest.raises(ValueError, match="kind"):
        Backoff(1.0, "average")
    with pytest.raises(ValueError, match="smoothing"):
        CountLikelihood(torch.ones(3, 3, 3), 0.0, backoff=Backoff(1.0))
