"""Beam search: exhaustive beams are exact, and scores never move between beams."""

from __future__ import annotations

import itertools

import pytest
import torch
from sep_bruteforce import random_counts, random_priors

from latsep.models.likelihood import CountLikelihood, GaussianLikelihood
from latsep.models.separation import beam as beam_module
from latsep.models.separation import separate


def path_scores(priors, likelihood, y, paths, weight):
    """Σ_t [log p1 + log p2 + w·log L] of every path; paths (P, 2, T)."""
    score = torch.zeros(paths.shape[0], dtype=torch.float64)
    for i, prior in enumerate(priors):
        score += prior.log_initial.double()[paths[:, i, 0]]
        for t in range(1, paths.shape[2]):
            score += prior.log_transition.double()[paths[:, i, t - 1], paths[:, i, t]]
    for t in range(paths.shape[2]):
        score += weight * likelihood.log_prob(
            paths[:, 0, t], paths[:, 1, t], y[t].expand(len(paths))
        )
    return score


def all_paths(k, steps):
    tuples = torch.tensor(list(itertools.product(range(k), repeat=2 * steps)))
    return tuples.view(-1, steps, 2).permute(0, 2, 1)  # (K^(2T), 2, T)


def viterbi(priors, likelihood, y, weight):
    """MAP of the product chain over (z1, z2) by dynamic programming."""
    k = priors[0].num_tokens
    a, b = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")

    def emission(t):
        return weight * likelihood.log_prob(a, b, torch.full_like(a, int(y[t])))  # (K, K)

    trans = [p.log_transition.double() for p in priors]
    best = priors[0].log_initial.double()[:, None] + priors[1].log_initial.double()[None, :]
    best = best + emission(0)
    back = []
    for t in range(1, len(y)):
        # score[a', b', a, b] = best[a', b'] + log T1[a', a] + log T2[b', b]
        scores = best[:, :, None, None] + trans[0][:, None, :, None] + trans[1][None, :, None, :]
        flat = scores.reshape(k * k, k, k)
        best, arg = flat.max(0)
        best = best + emission(t)
        back.append(arg)
    last = int(best.argmax())
    path = [(last // k, last % k)]
    for arg in reversed(back):
        prev = int(arg[path[-1]])
        path.append((prev // k, prev % k))
    return float(best.max()), torch.tensor(path[::-1]).T  # (2, T)


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_exhaustive_beam_returns_every_path_in_score_order(smoothing):
    g = torch.Generator().manual_seed(30)
    k, steps = 3, 3
    counts = random_counts(k, g, density=0.7)
    likelihood = CountLikelihood(counts, smoothing)
    priors = random_priors(2, k, g)
    y = torch.randint(0, k, (steps,), generator=g)
    paths = all_paths(k, steps)
    expected = path_scores(priors, likelihood, y, paths, 3.0).sort(descending=True).values
    expected = expected[torch.isfinite(expected)]
    result = separate(
        "lass",
        priors,
        likelihood,
        y,
        search="beam",
        num_candidates=len(paths),
        likelihood_weight=3.0,
    )
    torch.testing.assert_close(result.log_scores, expected)
    torch.testing.assert_close(
        path_scores(priors, likelihood, y, result.tokens, 3.0), result.log_scores
    )


@pytest.mark.parametrize("method", ["lass", "lqvae"])
def test_exhaustive_beam_is_the_viterbi_map(method):
    g = torch.Generator().manual_seed(31)
    k, steps = 3, 4
    if method == "lass":
        likelihood = CountLikelihood(random_counts(k, g, density=0.8) + 0.1, 0.2)
    else:
        likelihood = GaussianLikelihood(torch.randn(k, 2, generator=g), sigma=0.5)
    priors = random_priors(2, k, g)
    y = torch.randint(0, k, (steps,), generator=g)
    width = k ** (2 * (steps - 1))  # keeps every prefix: exhaustive
    result = separate(method, priors, likelihood, y, search="beam", num_candidates=width)
    best_score, best_path = viterbi(priors, likelihood, y, 1.0)
    assert result.log_scores[0].item() == pytest.approx(best_score, abs=1e-9)
    assert torch.equal(result.tokens[0], best_path)


def test_narrow_beam_scores_belong_to_their_own_paths():
    """The LASS defect: scores shuffled between beams. Ours recompute exactly from tokens."""
    g = torch.Generator().manual_seed(32)
    k, steps = 6, 12
    likelihood = CountLikelihood(random_counts(k, g) + 0.2, 0.1)
    priors = random_priors(2, k, g, sharpness=1.5)
    y = torch.randint(0, k, (steps,), generator=g)
    for top_k in (None, 3):
        result = separate(
            "lass", priors, likelihood, y, search="beam", num_candidates=5, top_k=top_k
        )
        assert result.tokens.shape == (5, 2, steps)
        torch.testing.assert_close(
            path_scores(priors, likelihood, y, result.tokens, 1.0), result.log_scores
        )
        assert bool((result.log_scores[:-1] >= result.log_scores[1:]).all())


def test_chunked_expansion_equals_one_block(monkeypatch):
    g = torch.Generator().manual_seed(33)
    k, steps = 8, 5
    likelihood = CountLikelihood(random_counts(k, g), 0.3)
    priors = random_priors(2, k, g)
    y = torch.randint(0, k, (steps,), generator=g)
    whole = separate("lass", priors, likelihood, y, search="beam", num_candidates=7)
    monkeypatch.setattr(beam_module, "_CHUNK_VALUES", 20)  # a few codes of source 1 per block
    chunked = separate("lass", priors, likelihood, y, search="beam", num_candidates=7)
    assert torch.equal(whole.tokens, chunked.tokens)
    torch.testing.assert_close(whole.log_scores, chunked.log_scores)


def test_beam_with_per_candidate_prefix_tracks_origins():
    g = torch.Generator().manual_seed(34)
    k = 5
    likelihood = CountLikelihood(random_counts(k, g) + 0.5, 0.1)
    priors = random_priors(2, k, g)
    prefix = torch.randint(0, k, (4, 2, 3), generator=g)  # (C, N, P)
    carried = torch.tensor([-1.0, -2.0, -30.0, -40.0], dtype=torch.float64)
    y = torch.randint(0, k, (3,), generator=g)
    result = separate(
        "lass",
        priors,
        likelihood,
        y,
        search="beam",
        num_candidates=4,
        prefix=prefix,
        prefix_scores=carried,
    )
    # Recompute: each beam's score = carried score of its origin + the new steps given its prefix.
    full = torch.cat([prefix[result.origins], result.tokens], 2)
    before = path_scores(priors, likelihood, torch.zeros(3, dtype=torch.long), prefix, 0.0)
    after = path_scores(
        priors, likelihood, torch.cat([torch.zeros(3, dtype=torch.long), y]), full, 1.0
    )
    prefix_lik = sum(
        likelihood.log_prob(full[:, 0, t], full[:, 1, t], torch.zeros(len(full), dtype=torch.long))
        for t in range(3)
    )
    expected = carried[result.origins] + after - before[result.origins] - prefix_lik
    torch.testing.assert_close(result.log_scores, expected)
