"""Numerical range: likelihood values far below their reference scale must not vanish.

Two failure modes, each checked against dense tables and brute-force enumeration:
- a count table's floor (p^w of unseen triples, ~1e-40 with large counts and w = 4) summed
  as c0·Σv + Σ_seen (floor − c0)·v cancels to 0 when v lives on seen pairs only;
- a Gaussian slice scaled by its maximum over all codes (y itself) underflows to 0 on every
  pair the priors allow when those pairs all lie > 745 nats from y.
Either way a step looked impossible and fell back to the priors alone.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sep_bruteforce import (
    assert_samples_match,
    chain_posterior,
    flat_index,
    normalised,
    prior_probs,
)

from latsep.models.likelihood import ChainLikelihood, CountLikelihood, GaussianLikelihood
from latsep.models.prior.markov import MarkovPrior
from latsep.models.separation import separate

DRAWS = 20_000


def seen_only_counts(k: int, scale: float) -> torch.Tensor:
    """A few seen pairs (a < 4, b < 3) with huge counts, never with output 0."""
    counts = torch.zeros(k, k, k, dtype=torch.float64)
    for a, b in itertools.product(range(4), range(3)):
        counts[a, b, 1 + (a + b) % (k - 1)] = scale
    return counts


def prior_on_first_three(k: int) -> MarkovPrior:
    """Exact zeros outside codes 0..2: the weights live on seen pairs only, no top-k needed."""
    initial = torch.zeros(k)
    initial[:3] = torch.tensor([1.0, 0.9, 0.8])
    return MarkovPrior(initial, torch.ones(k, k))


def test_sparse_floor_row_sums_do_not_cancel():
    k, w = 16, 4.0
    base = CountLikelihood(seen_only_counts(k, 1e7), 1e-3).table.weighted(w).base
    assert base.correction is not None  # the sparse form is the one under test
    v = torch.zeros(2, k, dtype=torch.float64)
    v[0, :3] = torch.tensor([1.0, 0.5, 0.25])  # on seen pairs only for a < 4
    v[1] = torch.rand(k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = v @ base.matrix().T  # dense, all terms non-negative
    assert float(exact[0, 0]) < 1e-35  # floor^4 ≈ 1.7e-40: far below c0 = 16^-4
    torch.testing.assert_close(base.row_sums(v), exact, rtol=1e-9, atol=0.0)


@pytest.mark.parametrize("method", ["lass", "mlass-bp"])
def test_floor_only_step_samples_the_posterior(method):
    """y = 0 never observed on the allowed pairs: the posterior is the floor alone."""
    k, w = 16, 4.0
    counts = seen_only_counts(k, 1e7)
    priors = [prior_on_first_three(k), prior_on_first_three(k)]
    if method == "lass":
        likelihood = CountLikelihood(counts, 1e-3)
    else:
        likelihood = ChainLikelihood([counts], 1e-3)  # n = 2 keeps any weight
    result = separate(
        method,
        priors,
        likelihood,
        torch.tensor([0]),
        num_candidates=DRAWS,
        likelihood_weight=w,
        generator=torch.Generator().manual_seed(0),
    )
    assert int(result.fallback_steps.sum()) == 0
    p = [prior_probs(prior) for prior in priors]
    expected = p[0][:, None] * p[1][None, :] * normalised(counts, 1e-3)[:, :, 0].pow(w)
    assert_samples_match(flat_index(result.tokens[:, :, 0], k), expected.numpy())


@pytest.mark.parametrize("top_k", [None, 3])
def test_chain_forward_message_does_not_cancel(top_k):
    """mlass-bp, 3 sources, w = 1: level 1 seen exactly on the rows level 0 feeds, never with
    y; counts ~1e15-1e17 put the floor (~1e-20) below c0 = 1/16 by more than float64's
    precision, so the forward message's floor term used to cancel to 0 or noise."""
    k = 16
    lv0 = torch.zeros(k, k, k, dtype=torch.float64)
    for a, b in itertools.product(range(4), range(3)):
        lv0[a, b, 1 + (a + b) % 6] = 10 ** (15 + 2 * ((a * 7 + b * 3) % 5) / 4)  # m2 in 1..6
    lv1 = torch.zeros(k, k, k, dtype=torch.float64)
    for m, z in itertools.product(range(1, 7), range(3)):
        lv1[m, z, 1 + (m + z) % (k - 1)] = 10 ** (15 + 2 * ((m * 5 + z * 3) % 5) / 4)  # y != 0
    priors = [prior_on_first_three(k) for _ in range(3)]
    result = separate(
        "mlass-bp",
        priors,
        ChainLikelihood([lv0, lv1], 1e-3),
        torch.tensor([0]),
        num_candidates=DRAWS,
        top_k=top_k,
        generator=torch.Generator().manual_seed(0),
    )
    assert int(result.fallback_steps.sum()) == 0
    expected = chain_posterior(
        [prior_probs(p, top_k=top_k) for p in priors],
        [normalised(x, 1e-3) for x in (lv0, lv1)],
        0,
    )
    assert_samples_match(flat_index(result.tokens[:, :, 0], k), expected.numpy())


# Codes on a line; y = 0. Every pair among codes 1..3 has its midpoint code 800+ nats from y.
CODEBOOK = torch.tensor([[0.0], [10.0], [11.0], [30.0]], dtype=torch.float64)


def gaussian_posterior(likelihood, p1, p2, y):
    """p1(a) p2(b) L(y | a, b) normalised in log space, (K, K)."""
    k = p1.shape[0]
    a, b = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    log_post = (
        p1.log()[:, None] + p2.log()[None, :] + likelihood.log_prob(a, b, torch.full_like(a, y))
    )
    post = (log_post - log_post.max()).exp()
    return post / post.sum(), log_post


@pytest.mark.parametrize("top_k", [None, 3])
def test_gaussian_far_from_y_samples_the_posterior(top_k):
    likelihood = GaussianLikelihood(CODEBOOK, sigma=0.25)
    initial = torch.tensor([1e-3, 1.0, 1.0, 1.0]) if top_k else torch.tensor([0.0, 1.0, 1.0, 1.0])
    priors = [MarkovPrior(initial, torch.ones(4, 4)) for _ in range(2)]
    result = separate(
        "lqvae",
        priors,
        likelihood,
        torch.tensor([0]),
        num_candidates=DRAWS,
        top_k=top_k,
        generator=torch.Generator().manual_seed(0),
    )
    assert int(result.fallback_steps.sum()) == 0
    p = [prior_probs(prior, top_k=top_k) for prior in priors]
    expected, _ = gaussian_posterior(likelihood, p[0], p[1], 0)
    assert_samples_match(flat_index(result.tokens[:, :, 0], 4), expected.numpy())
    # and the likelihood term is scored, not replaced by 0
    z = result.tokens[:, :, 0]
    scores = sum(prior.log_initial.double()[z[:, i]] for i, prior in enumerate(priors))
    scores = scores + likelihood.log_prob(z[:, 0], z[:, 1], torch.zeros(DRAWS, dtype=torch.long))
    torch.testing.assert_close(result.log_scores, scores)
    assert float(result.log_scores.max()) < -700


def test_gaussian_rows_with_different_reach():
    """Per-candidate prefixes: even rows reach y's own code, odd rows only far pairs. One
    shared scale would underflow the odd rows; each row must follow its own posterior."""
    likelihood = GaussianLikelihood(CODEBOOK, sigma=0.25)
    transition = torch.tensor(
        [[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
    )
    priors = [MarkovPrior(torch.ones(4), transition) for _ in range(2)]
    rows = torch.arange(DRAWS) % 2  # prefix token 0 (near) or 1 (far) for both sources
    prefix = rows[:, None, None].expand(DRAWS, 2, 1).contiguous()
    result = separate(
        "lqvae",
        priors,
        likelihood,
        torch.tensor([0]),
        num_candidates=DRAWS,
        prefix=prefix,
        generator=torch.Generator().manual_seed(1),
    )
    assert int(result.fallback_steps.sum()) == 0
    for kind in (0, 1):
        p = transition[kind].double() / transition[kind].sum()
        expected, _ = gaussian_posterior(likelihood, p, p, 0)
        drawn = result.tokens[rows == kind, :, 0]
        assert_samples_match(flat_index(drawn, 4), expected.numpy())
    far = result.tokens[rows == 1, :, 0]
    assert bool((far > 0).all())  # the far rows never drew y's code: their prior forbids it


@pytest.mark.parametrize("top_k", [None, 3])
def test_gaussian_beam_finds_the_far_map(top_k):
    likelihood = GaussianLikelihood(CODEBOOK, sigma=0.25)
    initial = torch.tensor([1e-3, 1.0, 1.0, 1.0])
    priors = [MarkovPrior(initial, torch.ones(4, 4)) for _ in range(2)]
    result = separate(
        "lqvae",
        priors,
        likelihood,
        torch.tensor([0]),
        search="beam",
        num_candidates=16,
        top_k=top_k,
    )
    assert int(result.fallback_steps.sum()) == 0
    p = [prior_probs(prior, top_k=top_k) for prior in priors]
    _, log_post = gaussian_posterior(likelihood, p[0], p[1], 0)
    raw = [prior.log_initial.double().exp() for prior in priors]
    _, untempered = gaussian_posterior(likelihood, raw[0], raw[1], 0)
    allowed = torch.isfinite(log_post)  # pairs inside the top-k supports
    best = untempered.masked_fill(~allowed, float("-inf"))
    assert result.tokens[0, :, 0].tolist() == list(divmod(int(best.argmax()), 4))
    assert float(result.log_scores[0]) == pytest.approx(float(best.max()), abs=1e-9)
    assert bool(torch.isfinite(result.log_scores).all())
    if top_k is not None:  # y's own code is pruned: every path lies 800+ nats from y
        np.testing.assert_array_less(result.log_scores.numpy(), -700)


def test_gaussian_reach_mixes_full_and_restricted_rows():
    """Rows whose priors allow every code keep the image maximum; the others get the maximum
    over the pairs they reach. Both kinds in one batch, against enumeration."""
    g = torch.Generator().manual_seed(3)
    likelihood = GaussianLikelihood(torch.randn(6, 2, generator=g, dtype=torch.float64), 0.5)
    base = likelihood.pair_slice(torch.full((4,), 2), 1.0).base
    codes = torch.arange(6).expand(4, 6)
    left = torch.rand(4, 6, generator=g, dtype=torch.float64) + 0.1
    right = torch.rand(4, 6, generator=g, dtype=torch.float64) + 0.1
    left[1, 2:] = 0.0  # row 1: source 1 restricted to codes {0, 1}
    right[3, :5] = 0.0  # row 3: source 2 restricted to code 5
    offsets = base.reachable(codes, left, codes, right).offsets
    for row in range(4):
        pairs = [
            (a, b) for a in range(6) for b in range(6) if left[row, a] > 0 and right[row, b] > 0
        ]
        logs = [float(base.log_gather(torch.tensor(a), torch.tensor(b))) for a, b in pairs]
        assert float(offsets[row]) == max(logs), row
