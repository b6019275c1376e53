"""lqvae and hybrid on the mixture's continuous latent: exact against brute force.

lqvae: L(m_t | a, b) = exp(-‖m_t - ½(e_a + e_b)‖² / 2σ²); hybrid: p(y_t | a, b) times the
same Gaussian. Both are enumerated pair by pair here from their definitions; the samplers,
the beam and the waveform pipeline (which hands the step index t over as the observation,
across windows) must follow them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sep_bruteforce import (
    assert_samples_match,
    flat_index,
    normalised,
    prior_probs,
    random_counts,
    random_priors,
)
from test_waveform_pipeline import ContextMarkov, LatticeCodec, mean_code_counts

from latsep.models.likelihood import (
    CountLikelihood,
    GaussianLikelihood,
    LatentCountLikelihood,
    LatentGaussianLikelihood,
)
from latsep.models.likelihood.backoff import Backoff
from latsep.models.prior.markov import MarkovPrior
from latsep.models.separation import separate, separate_waveform

DRAWS = 20_000
METHODS = ["lqvae", "hybrid"]


def brute_log_table(codebook, latent, sigma):
    """-‖m - ½(e_a + e_b)‖² / 2σ² pair by pair, (K, K)."""
    k = codebook.shape[0]
    out = torch.zeros(k, k, dtype=torch.float64)
    for a, b in itertools.product(range(k), repeat=2):
        residual = latent - 0.5 * (codebook[a] + codebook[b])
        out[a, b] = -float((residual * residual).sum()) / (2 * sigma**2)
    return out


def random_problem(seed, method="lqvae", k=5, d=3, steps=2, sigma=0.7):
    """(likelihood, t -> its brute-force log table (K, K), generator)."""
    g = torch.Generator().manual_seed(seed)
    codebook = torch.randn(k, d, generator=g, dtype=torch.float64)
    latents = torch.randn(steps, d, generator=g, dtype=torch.float64)
    gaussian = LatentGaussianLikelihood(codebook, sigma, latents)
    if method == "lqvae":
        return gaussian, (lambda t: brute_log_table(codebook, latents[t], sigma)), g
    counts = random_counts(k, g, density=0.6)
    tokens = torch.randint(0, k, (steps,), generator=g)
    table = normalised(counts, 0.3)  # p(y | a, b), written independently

    def expected(t):
        return table[:, :, int(tokens[t])].log() + brute_log_table(codebook, latents[t], sigma)

    return LatentCountLikelihood(CountLikelihood(counts, 0.3), gaussian, tokens), expected, g


@pytest.mark.parametrize("method", METHODS)
def test_table_and_log_prob_are_the_definition(method):
    likelihood, expected, _ = random_problem(0, method)
    a, b = torch.meshgrid(torch.arange(5), torch.arange(5), indexing="ij")
    for t in range(2):
        torch.testing.assert_close(likelihood.log_table(t), expected(t))
        torch.testing.assert_close(likelihood.log_table(t, 2.5), 2.5 * expected(t))
        torch.testing.assert_close(likelihood.log_prob(a, b, torch.full_like(a, t)), expected(t))


def test_hybrid_table_over_a_backoff_table_is_its_probabilities_times_the_gaussian():
    """The dense table is assembled from the count slice (base + seen pairs, scaled): over a
    backoff table it must still be w·(log p(y_t | a, b) + the Gaussian), pair by pair."""
    g = torch.Generator().manual_seed(7)
    k, steps = 6, 3
    counts = random_counts(k, g, density=0.4)
    table = CountLikelihood(counts, 0.1, backoff=Backoff(4.0, "product"))
    codebook = torch.randn(k, 2, generator=g, dtype=torch.float64)
    latents = torch.randn(steps, 2, generator=g, dtype=torch.float64)
    tokens = torch.tensor([0, 3, 5])
    likelihood = LatentCountLikelihood(
        table, LatentGaussianLikelihood(codebook, 0.9, latents), tokens
    )
    a, b = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    for t in range(steps):
        probs = table.log_prob(a, b, torch.full_like(a, int(tokens[t])))
        gaussian = brute_log_table(codebook, latents[t], 0.9)
        torch.testing.assert_close(likelihood.log_table(t, 2.0), 2.0 * (probs + gaussian))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("weight", "top_k"), [(1.0, None), (2.0, None), (1.0, 3)])
def test_samples_follow_the_posterior_of_the_right_step(method, weight, top_k):
    likelihood, expected_table, g = random_problem(1, method)
    priors = random_priors(2, 5, g)
    for t in range(2):  # the observation is the step index: each must read its own latent
        result = separate(
            method,
            priors,
            likelihood,
            torch.tensor([t]),
            num_candidates=DRAWS,
            top_k=top_k,
            likelihood_weight=weight,
            generator=torch.Generator().manual_seed(t),
        )
        p1, p2 = (prior_probs(p, top_k=top_k) for p in priors)
        expected = p1[:, None] * p2[None, :] * (weight * expected_table(t)).exp()
        assert_samples_match(flat_index(result.tokens[:, :, 0], 5), expected.numpy())
        assert int(result.fallback_steps.sum()) == 0


@pytest.mark.parametrize("top_k", [None, 2])
def test_a_latent_far_from_every_midpoint_is_not_an_impossible_step(top_k):
    """σ small and m far from every midpoint the priors allow: every pair lies thousands of
    nats below the best, which must still be sampled, not fall back to the priors."""
    codebook = torch.tensor([[0.0], [10.0], [11.0], [30.0]], dtype=torch.float64)
    likelihood = LatentGaussianLikelihood(codebook, 0.25, torch.tensor([[-20.0]]))
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
    p1, p2 = (prior_probs(p, top_k=top_k) for p in priors)
    log_post = (
        p1.log()[:, None]
        + p2.log()[None, :]
        + brute_log_table(codebook, torch.tensor([-20.0]), 0.25)
    )
    expected = (log_post - log_post.max()).exp()
    assert_samples_match(flat_index(result.tokens[:, :, 0], 4), expected.numpy())
    assert float(result.log_scores.max()) < -3000  # the likelihood term is scored, not 0


@pytest.mark.parametrize("method", METHODS)
def test_exhaustive_beam_is_the_map(method):
    likelihood, expected_table, g = random_problem(2, method, k=3, d=2, steps=3)
    priors = random_priors(2, 3, g)
    paths = torch.tensor(list(itertools.product(range(3), repeat=6))).view(-1, 3, 2)
    scores = torch.zeros(paths.shape[0], dtype=torch.float64)
    for i, prior in enumerate(priors):
        scores += prior.log_initial.double()[paths[:, 0, i]]
        for t in range(1, 3):
            scores += prior.log_transition.double()[paths[:, t - 1, i], paths[:, t, i]]
    for t in range(3):
        scores += expected_table(t)[paths[:, t, 0], paths[:, t, 1]]
    result = separate(method, priors, likelihood, torch.arange(3), search="beam", num_candidates=81)
    best = int(scores.argmax())
    assert result.log_scores[0].item() == pytest.approx(float(scores[best]), abs=1e-9)
    assert torch.equal(result.tokens[0], paths[best].T)


@pytest.mark.parametrize("method", METHODS)
def test_steps_outside_the_latents_are_refused(method):
    likelihood, *_ = random_problem(3, method)
    priors = random_priors(2, 5, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        separate(method, priors, likelihood, torch.tensor([2]))


def test_the_token_forms_bind_to_latents_only_with_a_latent_sigma():
    g = torch.Generator().manual_seed(0)
    codebook = torch.randn(4, 2, generator=g)
    tokens, latents = torch.tensor([0, 1, 3]), torch.ones(3, 2)
    with pytest.raises(ValueError, match="latent_sigma"):
        GaussianLikelihood(codebook, 0.5).observing(tokens, latents)
    with pytest.raises(ValueError, match="latent_sigma"):
        GaussianLikelihood(codebook, 0.5, latent_sigma=0.0)
    bound = GaussianLikelihood(codebook, 0.5, latent_sigma=0.2).observing(tokens, latents)
    assert isinstance(bound, LatentGaussianLikelihood)
    assert bound.sigma == 0.2 and bound.num_observations == 3
    counts = random_counts(4, g)
    with pytest.raises(ValueError, match="latent_sigma"):
        CountLikelihood(counts, 0.1).observing(tokens, latents)
    with pytest.raises(ValueError, match="together"):
        CountLikelihood(counts, 0.1, latent_sigma=0.2)
    hybrid = CountLikelihood(counts, 0.1, latent_codebook=codebook, latent_sigma=0.3)
    bound = hybrid.observing(tokens, latents)
    assert isinstance(bound, LatentCountLikelihood)
    assert bound.latent.sigma == 0.3 and torch.equal(bound.tokens, tokens)
    with pytest.raises(ValueError, match="2 mixture tokens for 3 latents"):
        hybrid.observing(tokens[:2], latents)


class LatentLattice(LatticeCodec):
    """The lattice codec (hop 1, codeword k = the value k) whose latent is the sample itself."""

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        return audio.float()[:, None, :]  # (B, D = 1, T)


@pytest.mark.parametrize("method", METHODS)
def test_the_pipeline_observes_each_steps_latent_across_windows(method):
    """Sources on even codes, σ small: each step's pair must average to that step's latent
    (the mixture's mean, not a token of it), and each candidate's score is its whole path's
    under the latent likelihood, step indices running on across the windows."""
    k, steps = 16, 30
    g = torch.Generator().manual_seed(4)
    even = torch.arange(0, k, 2)
    initial = torch.zeros(k)
    initial[even] = 1.0
    transition = torch.zeros(k, k)
    transition[:, even] = torch.rand(k, len(even), generator=g) + 0.1
    priors = [ContextMarkov(initial, transition) for _ in range(2)]
    sources = even[torch.randint(0, len(even), (2, steps), generator=g)].double().numpy()
    mixture = sources.sum(0) + 0.5  # an odd mean: no token equals it, the latent does
    codec = LatentLattice(k)
    if method == "lqvae":
        likelihood = GaussianLikelihood(codec.codebook, sigma=1.0, latent_sigma=0.1)
    else:  # the count table knows which pairs make each token; the latent, the rest
        likelihood = CountLikelihood(
            mean_code_counts(k), 0.1, latent_codebook=codec.codebook, latent_sigma=0.1
        )
    result = separate_waveform(
        method,
        codec,
        priors,
        likelihood,
        mixture,
        num_candidates=4,
        window_tokens=9,
        prefix_tokens=3,
        consistency="none",
    )
    assert int(result.fallback_steps.sum()) == 0
    # The mixture's mean is (a + b)/2 + 0.25; the nearest even pairs sum to the sources' sum.
    np.testing.assert_allclose(result.raw_stems.sum(0), sources.sum(0))
    mean = torch.from_numpy(mixture / 2)
    bound = likelihood.observing(codec.encode(mean[None])[0], mean[:, None])
    tokens = result.tokens
    expected = torch.zeros(tokens.shape[0], dtype=torch.float64)
    for i, prior in enumerate(priors):
        expected += prior.log_initial.double()[tokens[:, i, 0]]
        expected += prior.log_transition.double()[tokens[:, i, :-1], tokens[:, i, 1:]].sum(1)
    for t in range(steps):
        expected += bound.log_prob(tokens[:, 0, t], tokens[:, 1, t], torch.tensor(t))
    torch.testing.assert_close(result.log_scores, expected)


def dense_problem(seed, rows=4, k=6, spread=1.0):
    """A DenseLogBase and the same W as a CodeBase whose codes are the pairs (the reference)."""
    from latsep.models.likelihood.pair_slice import CodeBase, dense_log_slice

    g = torch.Generator().manual_seed(seed)
    logs = spread * torch.randn(k, k, generator=g, dtype=torch.float64)
    dense = dense_log_slice(logs, rows).base
    offsets = torch.full((rows,), float(logs.max()), dtype=torch.float64)
    reference = CodeBase(torch.arange(k * k).view(k, k), logs.reshape(-1), offsets)
    return dense, reference, g


@pytest.mark.parametrize("spread", [1.0, 300.0])
def test_the_dense_log_base_is_the_code_base_over_pairs(spread):
    """Row sums, gathers, matrices and reachable offsets of the dense table equal those of a
    CodeBase over pairs, with restricted supports and a range of thousands of nats."""
    dense, reference, g = dense_problem(0, spread=spread)
    k = 6
    v = torch.rand(4, k, generator=g, dtype=torch.float64)
    torch.testing.assert_close(dense.row_sums(v), reference.row_sums(v), rtol=1e-9, atol=0.0)
    a, b = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    torch.testing.assert_close(dense.log_gather(a, b), reference.log_gather(a, b))
    torch.testing.assert_close(dense.matrix(2), reference.matrix(2))
    codes = torch.arange(k).expand(4, k)
    left = torch.rand(4, k, generator=g, dtype=torch.float64) + 0.1
    right = left.flip(1).clone()
    left[1, 2:] = 0.0  # row 1 reaches codes {0, 1} on the left only
    right[3, :5] = 0.0  # row 3 reaches code 5 on the right only
    narrowed = dense.reachable(codes, left, codes, right)
    expected = reference.reachable(codes, left, codes, right)
    torch.testing.assert_close(narrowed.offsets, expected.offsets)
    torch.testing.assert_close(narrowed.row_sums(v), expected.row_sums(v), rtol=1e-9, atol=0.0)
    grid = codes[:, :, None], codes[:, None, :]
    torch.testing.assert_close(narrowed.gather(*grid), expected.gather(*grid))


@pytest.mark.parametrize("top_k", [None, 2])
def test_a_hybrid_step_no_pair_can_make_falls_back_to_the_priors(top_k):
    """Counts that never saw y_t and no smoothing: every pair is impossible, whatever the
    latent says; the step is drawn from the priors alone and flagged, as for the token form."""
    g = torch.Generator().manual_seed(5)
    counts = torch.zeros(4, 4, 4, dtype=torch.float64)
    counts[:, :, 1] = 1.0  # only output 1 was ever seen
    codebook = torch.randn(4, 2, generator=g, dtype=torch.float64)
    likelihood = LatentCountLikelihood(
        CountLikelihood(counts, 0.0),
        LatentGaussianLikelihood(codebook, 0.5, torch.zeros(1, 2)),
        torch.tensor([2]),  # the mixture's token: never an output
    )
    priors = random_priors(2, 4, g)
    result = separate(
        "hybrid", priors, likelihood, torch.tensor([0]), num_candidates=DRAWS, top_k=top_k
    )
    assert bool((result.fallback_steps == 1).all())
    p1, p2 = (prior_probs(p, top_k=top_k) for p in priors)
    assert_samples_match(flat_index(result.tokens[:, :, 0], 4), (p1[:, None] * p2).numpy())


def test_an_impossible_table_scales_to_zeros_not_nans():
    """All pairs impossible (log W = -inf): the slice and its narrowed rows give weight 0
    everywhere, so the samplers see no mass and fall back, instead of -inf - -inf = nan."""
    from latsep.models.likelihood.pair_slice import dense_log_slice

    logs = torch.full((4, 4), float("-inf"), dtype=torch.float64)
    base = dense_log_slice(logs, 2).base
    codes = torch.arange(4).expand(2, 4)
    weights = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    narrowed = base.reachable(codes, weights, codes, weights)
    assert bool(torch.isfinite(narrowed.offsets).all())
    grid = narrowed.gather(codes[:, :, None], codes[:, None, :])
    assert bool((grid == 0).all())
    assert bool((narrowed.row_sums(weights) == 0).all())
