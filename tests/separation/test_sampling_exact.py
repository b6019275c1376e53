"""At T = 1 the sampled tuples follow the exact per-step posterior of DESIGN.md.

Each test draws 20,000 candidates in one batched step and compares their histogram with
brute-force enumeration by a chi-square test at alpha = 1e-4 (plus a total-variation bound);
seeds are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from sep_bruteforce import (
    assert_samples_match,
    chain_posterior,
    flat_index,
    markov_log_prob,
    normalised,
    prior_probs,
    random_counts,
    random_priors,
)

from latsep.models.likelihood import (
    ChainLikelihood,
    CountLikelihood,
    GaussianLikelihood,
    MarginalLikelihood,
)
from latsep.models.prior.markov import MarkovPrior
from latsep.models.separation import separate

DRAWS = 20_000


def draw(method, priors, likelihood, y, seed=0, **options):
    return separate(
        method,
        priors,
        likelihood,
        torch.tensor(y, dtype=torch.long).reshape(-1),
        num_candidates=DRAWS,
        generator=torch.Generator().manual_seed(seed),
        **options,
    )


def pair_posterior(priors, table, y, weight=1.0, temperature=1.0, top_k=None):
    p1 = prior_probs(priors[0], temperature, top_k)
    p2 = prior_probs(priors[1], temperature, top_k)
    return p1[:, None] * p2[None, :] * table[:, :, y].pow(weight)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize(("smoothing", "weight"), [(0.0, 1.0), (0.5, 1.0), (0.5, 3.0)])
@pytest.mark.parametrize("method", ["lass", "hybrid"])
def test_count_methods_sample_the_posterior(method, symmetric, smoothing, weight):
    g = torch.Generator().manual_seed(10)
    k = 5
    counts = random_counts(k, g, density=0.5)
    if symmetric:
        counts = counts + counts.transpose(0, 1)
        priors = random_priors(1, k, g) * 2  # one prior for both sources
    else:
        priors = random_priors(2, k, g)
    y = 2
    result = draw(method, priors, CountLikelihood(counts, smoothing), y, likelihood_weight=weight)
    expected = pair_posterior(priors, normalised(counts, smoothing), y, weight)
    assert_samples_match(flat_index(result.tokens[:, :, 0], k), expected.numpy())
    assert int(result.fallback_steps.sum()) == 0


def test_lqvae_samples_the_gaussian_posterior():
    g = torch.Generator().manual_seed(11)
    k = 6
    codebook = torch.randn(k, 2, generator=g, dtype=torch.float64)
    lik = GaussianLikelihood(codebook, sigma=0.8)
    priors = random_priors(2, k, g)
    a, b = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    y = 3
    table = torch.zeros(k, k, k, dtype=torch.float64)
    table[:, :, y] = lik.log_prob(a, b, torch.full_like(a, y)).exp()
    result = draw("lqvae", priors, lik, y, likelihood_weight=2.0)
    expected = pair_posterior(priors, table, y, weight=2.0)
    assert_samples_match(flat_index(result.tokens[:, :, 0], k), expected.numpy())


@pytest.mark.parametrize(("temperature", "top_k"), [(0.6, None), (1.0, 3), (1.7, 2)])
def test_temperature_and_top_k_shape_the_priors(temperature, top_k):
    g = torch.Generator().manual_seed(12)
    k = 5
    counts = random_counts(k, g, density=0.8)
    priors = random_priors(2, k, g, sharpness=2.0)
    result = draw(
        "lass",
        priors,
        CountLikelihood(counts, 0.2),
        1,
        temperature=temperature,
        top_k=top_k,
    )
    expected = pair_posterior(priors, normalised(counts, 0.2), 1, 1.0, temperature, top_k)
    assert_samples_match(flat_index(result.tokens[:, :, 0], k), expected.numpy())


def test_two_steps_follow_the_per_step_posterior_given_history():
    """T = 2: the path distribution is the product of per-step posteriors (history-aware)."""
    g = torch.Generator().manual_seed(13)
    k = 3
    counts = random_counts(k, g, density=0.8) + 0.5
    priors = random_priors(2, k, g, sharpness=2.0)
    table = normalised(counts, 0.0)
    y = [1, 2]
    probs = torch.zeros((k,) * 4, dtype=torch.float64)  # [a1, b1, a2, b2]
    first = pair_posterior(priors, table, y[0])
    first = first / first.sum()
    for a1, b1 in itertools.product(range(k), repeat=2):
        p1 = priors[0].log_transition[a1].double().exp()
        p2 = priors[1].log_transition[b1].double().exp()
        second = p1[:, None] * p2[None, :] * table[:, :, y[1]]
        probs[a1, b1] = first[a1, b1] * second / second.sum()
    result = draw("lass", priors, CountLikelihood(counts, 0.0), y)
    outcome = result.tokens.permute(0, 2, 1).reshape(DRAWS, 4)  # (a1, b1, a2, b2)
    assert_samples_match(flat_index(outcome, k), probs.numpy())


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_mlass_bp_three_sources_joint(smoothing):
    g = torch.Generator().manual_seed(14)
    k = 4
    levels = [random_counts(k, g, density=0.6) for _ in range(2)]
    priors = random_priors(3, k, g)
    y = 1
    result = draw("mlass-bp", priors, ChainLikelihood(levels, smoothing), y)
    expected = chain_posterior(
        [prior_probs(p) for p in priors], [normalised(c, smoothing) for c in levels], y
    )
    assert_samples_match(flat_index(result.tokens[:, :, 0], k), expected.numpy())


@pytest.mark.parametrize("weight", [0.5, 2.0])
def test_mlass_bp_rejects_a_weight_with_three_sources(weight):
    """Π p_i · L^w has no chain factorisation for n >= 3: refused, not approximated."""
    g = torch.Generator().manual_seed(14)
    levels = [random_counts(4, g) for _ in range(2)]
    with pytest.raises(ValueError, match="likelihood_weight must be 1 for mlass-bp"):
        separate(
            "mlass-bp",
            random_priors(3, 4, g),
            ChainLikelihood(levels, 0.3),
            torch.tensor([1]),
            likelihood_weight=weight,
        )


def test_mlass_bp_two_sources_samples_l_to_the_w():
    """n = 2 keeps any weight: the draw follows Π p_i · L^w exactly."""
    g = torch.Generator().manual_seed(23)
    k = 5
    counts = random_counts(k, g, density=0.6)
    priors = random_priors(2, k, g)
    result = draw("mlass-bp", priors, ChainLikelihood([counts], 0.3), 2, likelihood_weight=2.5)
    expected = chain_posterior(
        [prior_probs(p) for p in priors], [normalised(counts, 0.3)], 2, weight=2.5
    )
    assert_samples_match(flat_index(result.tokens[:, :, 0], k), expected.numpy())


@pytest.mark.parametrize("top_k", [None, 2])
def test_mlass_bp_four_sources_marginals(top_k):
    g = torch.Generator().manual_seed(15)
    k = 3
    levels = [random_counts(k, g, density=0.7) for _ in range(3)]
    priors = random_priors(4, k, g)
    y = 2
    result = draw("mlass-bp", priors, ChainLikelihood(levels, 0.1), y, top_k=top_k)
    expected = chain_posterior(
        [prior_probs(p, top_k=top_k) for p in priors], [normalised(c, 0.1) for c in levels], y
    )
    for source in range(4):
        others = tuple(i for i in range(4) if i != source)
        marginal = expected.sum(others)
        assert_samples_match(result.tokens[:, source, 0].numpy(), marginal.numpy())


def test_mlass_bp_with_two_sources_is_lass():
    g = torch.Generator().manual_seed(16)
    k = 6
    counts = random_counts(k, g)
    priors = random_priors(2, k, g)
    y = torch.tensor([0, 4, 2, 5])
    options = {"num_candidates": 50, "likelihood_weight": 2.0, "top_k": 4}
    bp = separate(
        "mlass-bp",
        priors,
        ChainLikelihood([counts], 0.3),
        y,
        generator=torch.Generator().manual_seed(1),
        **options,
    )
    lass = separate(
        "lass",
        priors,
        CountLikelihood(counts, 0.3),
        y,
        generator=torch.Generator().manual_seed(1),
        **options,
    )
    assert torch.equal(bp.tokens, lass.tokens)
    torch.testing.assert_close(bp.log_scores, lass.log_scores)


@pytest.mark.parametrize("n", [3, 4])
def test_mlass_pe_samples_each_source_from_its_marginal_posterior(n):
    g = torch.Generator().manual_seed(17)
    k = 4
    counts = torch.randint(0, 5, (n, k, k), generator=g).double()
    priors = random_priors(n, k, g)
    y = 3
    result = draw("mlass-pe", priors, MarginalLikelihood(counts, 0.2), y, likelihood_weight=3.0)
    column = normalised(counts, 0.2)[:, :, y]  # (n, K) p(y | z_i)
    for source in range(n):
        expected = prior_probs(priors[source]) * column[source].pow(3.0)
        assert_samples_match(result.tokens[:, source, 0].numpy(), expected.numpy())
    if n == 3:  # and independently: the joint is the product
        joint = torch.ones((k,) * 3, dtype=torch.float64)
        for source in range(3):
            shape = [1, 1, 1]
            shape[source] = k
            marginal = prior_probs(priors[source]) * column[source].pow(3.0)
            joint = joint * marginal.view(shape)
        assert_samples_match(flat_index(result.tokens[:, :, 0], k), joint.numpy())


def test_unrestricted_and_full_support_paths_agree():
    """top_k=None (K×K matmul path) equals the gathered-grid path over all K codes."""
    from latsep.models.separation.pair_sampler import pair_masses
    from latsep.models.separation.weights import SourceWeights

    g = torch.Generator().manual_seed(18)
    k = 7
    counts = random_counts(k, g)
    lik = CountLikelihood(counts, 0.4)
    u = torch.rand(3, k, generator=g, dtype=torch.float64)
    v = torch.rand(3, k, generator=g, dtype=torch.float64)
    slc = lik.pair_slice(torch.tensor([1, 1, 1]), 2.0)
    full = torch.arange(k).expand(3, k)
    base_a, marginal, sparse_a = pair_masses(slc, SourceWeights(u, None), SourceWeights(v, None))
    base_b, grid, sparse_b = pair_masses(slc, SourceWeights(u, full), SourceWeights(v, full))
    torch.testing.assert_close(base_a, base_b)
    torch.testing.assert_close(marginal, grid.sum(2))
    torch.testing.assert_close(sparse_a, sparse_b)
    # And both equal the dense joint u(a) v(b) p(y | a, b)^w summed over b.
    dense = u[:, :, None] * v[:, None, :] * normalised(counts, 0.4)[:, :, 1].pow(2.0)
    sparse_marginal = torch.zeros(3, k, dtype=torch.float64).scatter_add_(1, slc.a, sparse_a)
    torch.testing.assert_close(marginal + sparse_marginal, dense.sum(2))


def test_impossible_step_falls_back_to_the_priors():
    """With smoothing 0 and a mixture token never counted, the step uses the priors alone."""
    g = torch.Generator().manual_seed(19)
    k = 4
    counts = random_counts(k, g, density=0.9)
    counts[:, :, 3] = 0  # y = 3 never observed
    priors = random_priors(2, k, g)
    result = draw("lass", priors, CountLikelihood(counts, 0.0), 3)
    assert bool((result.fallback_steps == 1).all())
    expected = prior_probs(priors[0])[:, None] * prior_probs(priors[1])[None, :]
    assert_samples_match(flat_index(result.tokens[:, :, 0], k), expected.numpy())


def test_impossible_pairs_are_never_drawn():
    g = torch.Generator().manual_seed(20)
    k = 5
    counts = random_counts(k, g, density=0.3)
    lik = CountLikelihood(counts, 0.0)
    priors = random_priors(2, k, g)
    y = torch.randint(0, k, (6,), generator=g)
    result = separate("lass", priors, lik, y, num_candidates=500, generator=g)
    for t in range(6):
        z = result.tokens[:, :, t]
        p = lik.log_prob(z[:, 0], z[:, 1], y[t].expand(500)).exp()
        assert bool(((p > 0) | (result.fallback_steps > 0)).all())


@pytest.mark.parametrize("method", ["lass", "mlass-bp", "mlass-pe"])
def test_log_scores_are_the_path_scores(method):
    g = torch.Generator().manual_seed(21)
    k, n, steps = 4, 3 if method != "lass" else 2, 5
    weight = 1.0 if method == "mlass-bp" else 2.0  # mlass-bp with 3 sources needs w = 1
    priors = random_priors(n, k, g)
    if method == "lass":
        lik = CountLikelihood(random_counts(k, g) + 1, 0.1)
    elif method == "mlass-bp":
        raw_levels = [random_counts(k, g) + 1 for _ in range(n - 1)]
        lik = ChainLikelihood(raw_levels, 0.1)
    else:
        lik = MarginalLikelihood(torch.rand(n, k, k, generator=g), 0.1)
    y = torch.randint(0, k, (steps,), generator=g)
    result = separate(
        method, priors, lik, y, num_candidates=8, likelihood_weight=weight, top_k=3, generator=g
    )
    tokens = result.tokens  # (C, N, T)
    prior_score = sum(markov_log_prob(prior, tokens[:, i]) for i, prior in enumerate(priors))
    if method == "lass":
        lik_score = sum(
            lik.log_prob(tokens[:, 0, t], tokens[:, 1, t], y[t].expand(8)) for t in range(steps)
        )
    elif method == "mlass-pe":
        lik_score = sum(lik.log_prob(tokens[:, :, t], y[t].expand(8)).sum(1) for t in range(steps))
    else:  # complete-data score along the returned hidden partial mixtures m_t (C, 1, T)
        assert result.hidden_tokens is not None and result.hidden_tokens.shape == (8, 1, steps)
        assert int(result.fallback_steps.sum()) == 0
        p0, p1 = (normalised(level, 0.1) for level in raw_levels)
        lik_score = torch.zeros(8, dtype=torch.float64)
        for t in range(steps):
            m = result.hidden_tokens[:, 0, t]
            z1, z2, z3 = tokens[:, 0, t], tokens[:, 1, t], tokens[:, 2, t]
            step_term = p0[z1, z2, m].log() + p1[m, z3, y[t]].log()  # log p0(m|z1,z2) p1(y|m,z3)
            assert bool(torch.isfinite(step_term).all())  # m is consistent with the draw and y
            lik_score += step_term
    torch.testing.assert_close(result.log_scores, prior_score + weight * lik_score)


def test_method_validation():
    g = torch.Generator().manual_seed(22)
    priors = random_priors(2, 4, g)
    counts = random_counts(4, g)
    y = torch.tensor([1, 2])
    with pytest.raises(ValueError, match="unknown method"):
        separate("nope", priors, CountLikelihood(counts), y)
    with pytest.raises(ValueError, match="needs a GaussianLikelihood"):
        separate("lqvae", priors, CountLikelihood(counts), y)
    with pytest.raises(ValueError, match="separates 2 sources"):
        separate("lass", [*priors, priors[0]], CountLikelihood(counts), y)
    with pytest.raises(ValueError, match="separates 3 sources"):
        separate("mlass-bp", priors, ChainLikelihood([counts, counts]), y)
    with pytest.raises(ValueError, match="beam"):
        separate("mlass-pe", priors, MarginalLikelihood(torch.ones(2, 4, 4)), y, search="beam")
    with pytest.raises(ValueError, match="codes"):
        separate("lass", [MarkovPrior.random(5), priors[1]], CountLikelihood(counts), y)
    with pytest.raises(ValueError, match="mixture tokens"):
        separate("lass", priors, CountLikelihood(counts), torch.tensor([7]))
    with pytest.raises(ValueError, match="temperature"):
        separate("lass", priors, CountLikelihood(counts), y, temperature=0.0)
