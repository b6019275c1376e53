"""separate(source_factors=f): the target gains a known factor f_t,i(z_i) per step and source,
Π_i p_i(z_i | history) f_t,i(z_i) · L(y_t | z)^w. Checked against enumeration for each
sampler family at T = 1, for the whole-path posterior under smc at T = 3, and in the scores.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sep_bruteforce import (
    assert_samples_match,
    chain_posterior,
    flat_index,
    markov_log_prob,
    normalised,
    pair_path_posterior,
    prior_probs,
    random_counts,
    random_priors,
)

import latsep.models.separation.engine as engine
from latsep.models.likelihood import ChainLikelihood, CountLikelihood, MarginalLikelihood
from latsep.models.prior.markov import MarkovPrior
from latsep.models.separation import separate

DRAWS = 20_000


def _factors(steps, n, k, generator):
    """Positive factors spread over two orders of magnitude, (T, N, K) float64."""
    return 10.0 ** (2.0 * torch.rand(steps, n, k, generator=generator, dtype=torch.float64) - 1.0)


def _draw(method, priors, likelihood, ys, factors, seed=0, **options):
    return separate(
        method,
        priors,
        likelihood,
        torch.tensor(ys, dtype=torch.long),
        num_candidates=options.pop("num_candidates", DRAWS),
        generator=torch.Generator().manual_seed(seed),
        source_factors=factors,
        **options,
    )


def test_mlass_pe_draws_each_source_from_its_posterior_times_its_factor():
    g = torch.Generator().manual_seed(3)
    n, k, y = 3, 4, 2
    counts = torch.randint(0, 5, (n, k, k), generator=g).double()
    priors = random_priors(n, k, g)
    factors = _factors(1, n, k, g)
    result = _draw("mlass-pe", priors, MarginalLikelihood(counts, 0.2), [y], factors,
                   likelihood_weight=2.0)  # fmt: skip
    column = normalised(counts, 0.2)[:, :, y]
    for source in range(n):
        expected = prior_probs(priors[source]) * factors[0, source] * column[source].pow(2.0)
        assert_samples_match(result.tokens[:, source, 0].numpy(), expected.numpy())


def test_mlass_bp_draws_the_chain_posterior_times_the_factors():
    """The factors act on the sources' codes only: the chain's hidden partial mixtures are
    summed out as before (enumerated by chain_posterior with the priors times the factors)."""
    g = torch.Generator().manual_seed(4)
    n, k, y = 3, 3, 1
    counts = [random_counts(k, g, density=0.7) for _ in range(n - 1)]
    likelihood = ChainLikelihood(counts, 0.1)
    levels = [normalised(c, 0.1) for c in counts]
    priors = random_priors(n, k, g)
    factors = _factors(1, n, k, g)
    result = _draw("mlass-bp", priors, likelihood, [y], factors)
    tilted = [prior_probs(p) * factors[0, i] for i, p in enumerate(priors)]
    expected = chain_posterior([t / t.sum() for t in tilted], levels, y)
    assert_samples_match(flat_index(result.tokens[:, :, 0], k), expected.numpy())


def test_pair_draws_the_posterior_times_the_factors_and_unit_factors_change_nothing():
    g = torch.Generator().manual_seed(5)
    k, y = 4, 3
    counts = random_counts(k, g)
    priors = random_priors(2, k, g)
    factors = _factors(1, 2, k, g)
    result = _draw("lass", priors, CountLikelihood(counts, 0.3), [y], factors)
    table = normalised(counts, 0.3)
    expected = (
        (prior_probs(priors[0]) * factors[0, 0])[:, None]
        * (prior_probs(priors[1]) * factors[0, 1])[None, :]
        * table[:, :, y]
    )
    assert_samples_match(flat_index(result.tokens[:, :, 0], k), expected.numpy())
    # factors of 1 are no factors: the same draws and scores from the same generator
    ys = [y, 0, 2]
    ones = torch.ones(3, 2, k, dtype=torch.float64)
    with_ones = _draw("lass", priors, CountLikelihood(counts, 0.3), ys, ones, num_candidates=64)
    without = _draw("lass", priors, CountLikelihood(counts, 0.3), ys, None, num_candidates=64)
    assert torch.equal(with_ones.tokens, without.tokens)
    torch.testing.assert_close(with_ones.log_scores, without.log_scores)


def test_smc_follows_the_whole_path_posterior_with_the_factors(monkeypatch):
    """A late factor (step 3 says "source 0 is 1") must reach back to step 1 through the
    sticky priors: smc's evidence includes the factors, so its candidates follow the
    whole-path posterior; the per-step draws of "sample" do not."""
    k, ys = 2, [0, 0, 0]
    sticky = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    priors = [MarkovPrior(torch.tensor([0.5, 0.5]), sticky) for _ in range(2)]
    counts = torch.ones(k, k, k)  # the mixture says nothing
    factors = torch.ones(3, 2, k, dtype=torch.float64)
    factors[2, 0] = torch.tensor([0.05, 1.0])
    probs = pair_path_posterior(priors, normalised(counts, 0.0), ys, factors)
    monkeypatch.setattr(engine, "RESAMPLE_BELOW", 1.01)
    options = dict(num_candidates=40_000, seed=7)
    smc = _draw("lass", priors, CountLikelihood(counts, 0.0), ys, factors, search="smc", **options)
    sample = _draw("lass", priors, CountLikelihood(counts, 0.0), ys, factors, **options)
    weights = k ** torch.arange(5, -1, -1)
    noise = 0.5 * math.sqrt(probs.size / 40_000)
    for result, close in ((smc, True), (sample, False)):
        outcome = (result.tokens.permute(0, 2, 1).reshape(40_000, 6) * weights).sum(1).numpy()
        tv = 0.5 * np.abs(np.bincount(outcome, minlength=probs.size) / 40_000 - probs.ravel()).sum()
        assert (tv < noise) if close else (tv > 3 * noise)


@pytest.mark.parametrize("method", ["mlass-pe", "mlass-bp"])
def test_scores_add_the_factors_of_the_drawn_codes(method):
    g = torch.Generator().manual_seed(8)
    n, k, ys = 3, 3, [1, 0, 2]
    priors = random_priors(n, k, g)
    if method == "mlass-pe":
        likelihood = MarginalLikelihood(torch.randint(1, 5, (n, k, k), generator=g).double(), 0.1)
    else:
        counts = [random_counts(k, g) for _ in range(n - 1)]
        likelihood = ChainLikelihood(counts, 0.1)
    factors = _factors(len(ys), n, k, g)
    options = dict(num_candidates=32, seed=2)
    plain = _draw(method, priors, likelihood, ys, None, **options)
    tilted = _draw(method, priors, likelihood, ys, factors, **options)
    # the same scores as a run without factors would give these paths, plus Σ log f
    tokens = tilted.tokens
    prior_terms = sum(markov_log_prob(p, tokens[:, i]) for i, p in enumerate(priors))
    factor_terms = sum(
        factors[t, i].log()[tokens[:, i, t]] for t in range(len(ys)) for i in range(n)
    )
    if method == "mlass-pe":
        y = torch.tensor(ys)
        lik = sum(likelihood.log_prob(tokens[:, :, t], y[t].expand(32)).sum(1) for t in range(3))
    else:  # the chain scores along the partial mixture m_2 it sampled
        first, second = (normalised(c, 0.1) for c in counts)
        m = tilted.hidden_tokens[:, 0]
        lik = sum(
            first[tokens[:, 0, t], tokens[:, 1, t], m[:, t]].log()
            + second[m[:, t], tokens[:, 2, t], ys[t]].log()
            for t in range(3)
        )
    torch.testing.assert_close(tilted.log_scores, prior_terms + factor_terms + lik)
    assert not torch.equal(plain.tokens, tilted.tokens)


@pytest.mark.parametrize(
    ("factors", "search", "message"),
    [
        (torch.ones(2, 2, 3), "sample", r"\(T, N, K\)"),
        (torch.zeros(3, 2, 3), "sample", "> 0"),
        (torch.full((3, 2, 3), math.inf), "smc", "finite"),
        (torch.ones(3, 2, 3), "beam", "beam"),
    ],
)
def test_bad_factors_are_refused(factors, search, message):
    g = torch.Generator().manual_seed(9)
    priors = random_priors(2, 3, g)
    with pytest.raises(ValueError, match=message):
        separate("lass", priors, CountLikelihood(random_counts(3, g), 0.1),
                 torch.tensor([0, 1, 2]), search=search, source_factors=factors)  # fmt: skip
