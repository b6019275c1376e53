"""search="smc": each step's evidence is the exact predictive probability, resampling keeps
rows in proportion to their weights, and the candidates follow the whole-sequence posterior
(which independent per-step draws do not)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sep_bruteforce import (
    markov_log_prob,
    normalised,
    pair_path_posterior,
    random_counts,
    random_priors,
)

import latsep.models.separation.engine as engine
from latsep.models.likelihood import (
    ChainLikelihood,
    CountLikelihood,
    GaussianLikelihood,
    MarginalLikelihood,
)
from latsep.models.prior.markov import MarkovPrior
from latsep.models.separation import separate
from latsep.models.separation.engine import add_evidence, resampled_rows, step_sampler
from latsep.models.separation.weights import prior_weights


def _evidence(method, priors, likelihood, y, weight=1.0, rows=3):
    log_probs = [p.log_initial.double().expand(rows, -1) for p in priors]
    weights = [prior_weights(lp) for lp in log_probs]
    draw = step_sampler(method, likelihood, weight).sample(weights, y, torch.Generator())
    return draw.log_evidence


def _probs(priors):
    return [p.log_initial.double().exp() for p in priors]


@pytest.mark.parametrize(("method", "weight"), [("lass", 1.0), ("hybrid", 2.5)])
def test_pair_evidence_is_the_predictive_probability(method, weight):
    g = torch.Generator().manual_seed(30)
    k, y = 5, 2
    counts = random_counts(k, g, density=0.6)
    priors = random_priors(2, k, g)
    p1, p2 = _probs(priors)
    table = normalised(counts, 0.3)[:, :, y].pow(weight)
    expected = math.log(float((p1[:, None] * p2[None, :] * table).sum()))
    got = _evidence(method, priors, CountLikelihood(counts, 0.3), y, weight)
    torch.testing.assert_close(got, torch.full((3,), expected, dtype=torch.float64))


def test_gaussian_evidence_is_the_predictive_probability():
    g = torch.Generator().manual_seed(31)
    k, y = 6, 4
    codebook = 3.0 * torch.randn(k, 2, generator=g, dtype=torch.float64)
    lik = GaussianLikelihood(codebook, sigma=0.3)  # sharp: the scaled slice must be undone
    priors = random_priors(2, k, g)
    p1, p2 = _probs(priors)
    a, b = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    log_l = lik.log_prob(a, b, torch.full_like(a, y))
    expected = torch.logsumexp((p1[:, None] * p2[None, :]).log() + 2.0 * log_l, (0, 1))
    got = _evidence("lqvae", priors, lik, y, 2.0)
    torch.testing.assert_close(got, expected.expand(3))


@pytest.mark.parametrize("n", [2, 3, 4])
def test_chain_evidence_sums_the_hidden_mixtures(n):
    g = torch.Generator().manual_seed(32)
    k, y = 3, 1
    levels = [random_counts(k, g, density=0.7) for _ in range(n - 1)]
    priors = random_priors(n, k, g)
    probs = _probs(priors)
    tables = [normalised(c, 0.2) for c in levels]
    total = 0.0
    for z in itertools.product(range(k), repeat=n):
        prior = float(np.prod([probs[i][z[i]] for i in range(n)]))
        for hidden in itertools.product(range(k), repeat=n - 2):
            m = [z[0], *hidden, y]
            term = prior
            for level in range(n - 1):
                term *= float(tables[level][m[level], z[level + 1], m[level + 1]])
            total += term
    got = _evidence("mlass-bp", priors, ChainLikelihood(levels, 0.2), y)
    torch.testing.assert_close(got, torch.full((3,), math.log(total), dtype=torch.float64))


def test_marginal_evidence_comes_per_source():
    """mlass-pe's sources are independent given y: one evidence per source (their product
    is the row's)."""
    g = torch.Generator().manual_seed(33)
    k, n, y = 4, 3, 2
    counts = torch.stack([random_counts(k, g, density=0.8)[0] for _ in range(n)])  # (n, K, K)
    priors = random_priors(n, k, g)
    table = normalised(counts, 0.1)  # p(y | z_i) per source
    expected = torch.tensor(
        [
            math.log(float((p * table[i, :, y].pow(1.5)).sum()))
            for i, p in enumerate(_probs(priors))
        ],
        dtype=torch.float64,
    )
    got = _evidence("mlass-pe", priors, MarginalLikelihood(counts, 0.1), y, 1.5)
    torch.testing.assert_close(got, expected.expand(3, n))


def test_resampling_keeps_rows_in_proportion_to_their_weights():
    g = torch.Generator().manual_seed(34)
    even = torch.zeros(8, dtype=torch.float64)
    assert resampled_rows(even, g, 0.5) is None
    weights = torch.tensor([0.5, 0.0, 0.25, 0.125, 0.125, 0.0, 0.0, 0.0], dtype=torch.float64)
    for _ in range(20):
        rows = resampled_rows(weights.log(), g, 0.5)
        assert rows is not None
        counts = torch.bincount(rows, minlength=8).double()
        assert bool(((counts - 8 * weights).abs() < 1).all()), counts
        assert bool((rows[1:] >= rows[:-1]).all())


def test_a_step_every_row_fell_back_on_leaves_the_weights():
    weights = torch.tensor([[0.0, 0.0], [-1.0, -1.0]])  # (C, groups)
    evidence = torch.tensor([[-math.inf, -math.inf], [-math.inf, -2.0]])
    updated = add_evidence(weights, evidence)
    assert torch.equal(updated[:, 0], weights[:, 0])  # group 0: every row fell back
    assert updated[0, 1] == -math.inf and updated[1, 1] == -3.0


def _outcomes(tokens, k):
    """Each row's whole path (C, 2, T) as one index into the flattened (a_1, b_1, ...) grid."""
    steps = tokens.shape[2]
    outcome = tokens.permute(0, 2, 1).reshape(tokens.shape[0], 2 * steps)
    return (outcome * k ** torch.arange(2 * steps - 1, -1, -1)).sum(1).numpy()


def _tv(tokens, probs, k):
    index = _outcomes(tokens, k)
    observed = np.bincount(index, minlength=probs.size) / index.size
    return 0.5 * np.abs(observed - probs.ravel()).sum()


def _sticky_problem():
    """Two sticky Markov sources and a table where y = 1 says "both sources are 1": the
    later steps y_2, y_3 inform z_1. Returns (priors, counts, ys, whole-path posterior)."""
    k, ys = 2, [0, 1, 1]
    sticky = torch.tensor([[0.9, 0.1], [0.1, 0.9]])  # paths rarely switch
    priors = [MarkovPrior(torch.tensor([0.5, 0.5]), sticky) for _ in range(2)]
    counts = torch.ones(k, k, k)  # y_1 = 0 says nothing
    counts[:, :, 1] = 0.2
    counts[1, 1, 1] = 20.0
    return priors, counts, ys, pair_path_posterior(priors, normalised(counts, 0.0), ys)


def test_smc_candidates_follow_the_whole_sequence_posterior(monkeypatch):
    """With resampling at every step, the candidates are draws of p(z_1..T | y_1..T); the
    independent per-step draws of search="sample" are not (they never see y_(t+1) when
    they draw z_t), and the same check tells them apart."""
    priors, counts, ys, probs = _sticky_problem()
    monkeypatch.setattr(engine, "RESAMPLE_BELOW", 1.01)
    mixture = torch.tensor(ys)
    options = dict(num_candidates=40_000, generator=torch.Generator().manual_seed(36))
    smc = separate("lass", priors, CountLikelihood(counts, 0.0), mixture, search="smc", **options)
    sample = separate("lass", priors, CountLikelihood(counts, 0.0), mixture, **options)
    noise = 0.5 * math.sqrt(probs.size / 40_000)  # the TV scale of multinomial noise
    assert _tv(smc.tokens, probs, 2) < noise
    assert _tv(sample.tokens, probs, 2) > 3 * noise
    assert smc.origins.unique().numel() < 40_000  # rows were resampled, origins with them


def test_mixed_resamples_the_first_half_and_leaves_the_rest_independent(monkeypatch):
    """search="mixed": the first ⌈C/2⌉ rows are smc particles (the whole-path posterior,
    resampled among themselves only), the others are the independent draws of "sample"."""
    priors, counts, ys, probs = _sticky_problem()
    monkeypatch.setattr(engine, "RESAMPLE_BELOW", 1.01)
    mixture = torch.tensor(ys)
    options = dict(num_candidates=40_000, generator=torch.Generator().manual_seed(42))
    mixed = separate(
        "lass", priors, CountLikelihood(counts, 0.0), mixture, search="mixed", **options
    )
    sample = separate("lass", priors, CountLikelihood(counts, 0.0), mixture, **options)
    particles, independent = mixed.tokens[:20_000], mixed.tokens[20_000:]
    noise = 0.5 * math.sqrt(probs.size / 20_000)
    assert _tv(particles, probs, 2) < noise
    assert _tv(independent, probs, 2) > 3 * noise
    # the independent half is distributed as search="sample"'s draws
    proposal = np.bincount(_outcomes(sample.tokens, 2), minlength=probs.size) / 40_000
    assert _tv(independent, proposal, 2) < 2 * noise
    assert torch.equal(mixed.origins[20_000:], torch.arange(20_000, 40_000))
    assert (
        mixed.origins[:20_000].max() < 20_000 and mixed.origins[:20_000].unique().numel() < 20_000
    )


@pytest.mark.parametrize(
    ("rows", "search", "particles"),
    [(16, "mixed", 8), (5, "mixed", 3), (1, "mixed", 1), (16, "smc", 16), (16, "sample", 0)],
)
def test_particle_rows(rows, search, particles):
    assert engine.particle_rows(search, rows) == particles


def test_smc_scores_are_the_resampled_paths_scores():
    g = torch.Generator().manual_seed(37)
    k, ys = 3, [0, 2, 1, 1, 0]
    priors = random_priors(2, k, g, sharpness=2.0)
    counts = random_counts(k, g, density=1.0) + 0.5
    lik = CountLikelihood(counts, 0.0)
    result = separate(
        "lass",
        priors,
        lik,
        torch.tensor(ys),
        search="smc",
        num_candidates=64,
        generator=torch.Generator().manual_seed(38),
    )
    table = normalised(counts, 0.0)
    for row in range(64):
        a, b = result.tokens[row]
        score = sum(float(markov_log_prob(p, s)) for p, s in zip(priors, (a, b), strict=True))
        score += sum(math.log(float(table[a[t], b[t], y])) for t, y in enumerate(ys))
        assert math.isclose(float(result.log_scores[row]), score, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("search", ["smc", "mixed"])
@pytest.mark.parametrize(
    ("options", "message"),
    [({"temperature": 0.7}, "temperature must be 1"), ({"top_k": 2}, "no top_k")],
)
def test_smc_needs_the_untempered_posterior(search, options, message):
    g = torch.Generator().manual_seed(39)
    priors = random_priors(2, 3, g)
    lik = CountLikelihood(random_counts(3, g) + 1.0, 0.0)
    with pytest.raises(ValueError, match=message):
        separate("lass", priors, lik, torch.tensor([0, 1]), search=search, **options)


def _source_path_posterior(prior, column, ys):
    """p(z_1..T | y_1..T) of one mlass-pe source: its prior path times Π_t p(y_t | z_t)."""
    k, steps = column.shape[0], len(ys)
    probs = np.zeros((k,) * steps)
    for path in itertools.product(range(k), repeat=steps):
        value = math.exp(float(markov_log_prob(prior, path)))
        probs[path] = value * np.prod([float(column[path[t], y]) for t, y in enumerate(ys)])
    return probs / probs.sum()


def _source_tv(tokens, probs, k):
    index = (tokens * k ** torch.arange(tokens.shape[1] - 1, -1, -1)).sum(1).numpy()
    observed = np.bincount(index, minlength=probs.size) / index.size
    return 0.5 * np.abs(observed - probs.ravel()).sum()


def test_mlass_pe_resamples_each_source_on_its_own(monkeypatch):
    """Each source's candidates follow its own whole-path posterior, histories and scores
    travel per source (origins (C, N)), and a second window continues them exactly."""
    k, ys = 2, [0, 1, 1]
    sticky = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    priors = [
        MarkovPrior(torch.tensor([0.5, 0.5]), sticky),
        MarkovPrior(torch.tensor([0.3, 0.7]), sticky.flip(1)),  # a source that alternates
    ]
    counts = torch.ones(2, k, k)  # [source, z, y]: y = 1 says "z = 1" for both
    counts[:, 0, 1] = 0.1
    counts[:, 1, 1] = 10.0
    lik = MarginalLikelihood(counts, 0.0)
    column = normalised(counts, 0.0)
    monkeypatch.setattr(engine, "RESAMPLE_BELOW", 1.01)
    options = dict(num_candidates=40_000, generator=torch.Generator().manual_seed(40))
    smc = separate("mlass-pe", priors, lik, torch.tensor(ys), search="smc", **options)
    sample = separate("mlass-pe", priors, lik, torch.tensor(ys), **options)
    assert smc.origins.shape == (40_000, 2) and smc.source_scores is not None
    noise = 0.5 * math.sqrt(k ** len(ys) / 40_000)
    for i in range(2):
        probs = _source_path_posterior(priors[i], column[i], ys)
        assert _source_tv(smc.tokens[:, i], probs, k) < noise
    probs = _source_path_posterior(priors[0], column[0], ys)
    assert _source_tv(sample.tokens[:, 0], probs, k) > 3 * noise
    torch.testing.assert_close(smc.source_scores.sum(1), smc.log_scores)

    # A second window: each source continues its own row, and the scores stay path scores.
    first = separate(
        "mlass-pe",
        priors,
        lik,
        torch.tensor(ys),
        search="smc",
        num_candidates=32,
        generator=torch.Generator().manual_seed(41),
    )
    more = [1, 0]
    second = separate(
        "mlass-pe",
        priors,
        lik,
        torch.tensor(more),
        search="smc",
        num_candidates=32,
        generator=torch.Generator().manual_seed(42),
        prefix=first.tokens,
        prefix_scores=first.source_scores,
    )
    rows = torch.arange(2)
    whole = torch.cat([first.tokens[second.origins, rows], second.tokens], 2)
    for c in range(32):
        expected = 0.0
        for i in range(2):
            path = whole[c, i]
            expected += float(markov_log_prob(priors[i], path))
            expected += sum(math.log(float(column[i, path[t], y])) for t, y in enumerate(ys + more))
        assert math.isclose(float(second.log_scores[c]), expected, rel_tol=1e-9, abs_tol=1e-9)


def test_mlass_pe_mixed_keeps_the_independent_rows_per_source(monkeypatch):
    """mixed with mlass-pe: each source's particles are resampled among the first half, and
    every source of the other half keeps its own row."""
    g = torch.Generator().manual_seed(43)
    priors = random_priors(2, 3, g, sharpness=2.0)
    lik = MarginalLikelihood(torch.rand(2, 3, 3, generator=g) ** 4 + 0.01, 0.0)  # peaked
    monkeypatch.setattr(engine, "RESAMPLE_BELOW", 1.01)
    mixed = separate(
        "mlass-pe",
        priors,
        lik,
        torch.tensor([0, 2, 1, 1]),
        search="mixed",
        num_candidates=64,
        generator=torch.Generator().manual_seed(44),
    )
    assert mixed.origins.shape == (64, 2)
    assert torch.equal(mixed.origins[32:], torch.arange(32, 64)[:, None].expand(32, 2))
    assert mixed.origins[:32].max() < 32
    for i in range(2):  # the particles were resampled, each source on its own
        assert mixed.origins[:32, i].unique().numel() < 32
    assert not torch.equal(mixed.origins[:32, 0], mixed.origins[:32, 1])
    torch.testing.assert_close(mixed.source_scores.sum(1), mixed.log_scores)
