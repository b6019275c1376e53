"""Edges of separate()'s contract: rejected options, prior advances, result sizes, table checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sep_bruteforce import random_counts, random_priors

from latsep.models.likelihood import (
    ChainLikelihood,
    CountLikelihood,
    MarginalLikelihood,
)
from latsep.models.prior.markov import MarkovPrior
from latsep.models.separation import separate, separate_waveform


class CountingPrior:
    """A MarkovPrior that counts advance() calls (the Prior protocol, nothing else)."""

    def __init__(self, inner: MarkovPrior) -> None:
        self.inner = inner
        self.advances = 0

    @property
    def num_tokens(self) -> int:
        return self.inner.num_tokens

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.inner.initial_state(batch_size)

    def log_probs(self, state: torch.Tensor) -> torch.Tensor:
        return self.inner.log_probs(state)

    def advance(self, state: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        self.advances += 1
        return self.inner.advance(state, tokens)

    def select(self, state: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self.inner.select(state, rows)


def small_problem(k: int = 5, seed: int = 40):
    g = torch.Generator().manual_seed(seed)
    return random_priors(2, k, g), CountLikelihood(random_counts(k, g) + 0.5, 0.1), g


@pytest.mark.parametrize("weight", [0.0, -1.0, float("nan"), float("inf")])
@pytest.mark.parametrize("method", ["lass", "mlass-pe", "mlass-bp"])
def test_likelihood_weight_must_be_positive(method, weight):
    """w = 0 used to give NaN scores (0 · log 0) and 0^0 = 1 on impossible pairs."""
    g = torch.Generator().manual_seed(41)
    k = 4
    if method == "lass":
        priors, lik = random_priors(2, k, g), CountLikelihood(random_counts(k, g), 0.0)
    elif method == "mlass-pe":
        priors, lik = random_priors(3, k, g), MarginalLikelihood(torch.ones(3, k, k), 0.0)
    else:
        priors = random_priors(2, k, g)
        lik = ChainLikelihood([random_counts(k, g)], 0.0)
    with pytest.raises(ValueError, match="likelihood_weight must be a finite number > 0"):
        separate(method, priors, lik, torch.tensor([1, 2]), likelihood_weight=weight)


@pytest.mark.parametrize("search", ["sample", "beam"])
@pytest.mark.parametrize("steps", [1, 4])
def test_no_advance_after_the_last_step(search, steps):
    """A windowed prior (our transformer) may re-prime on an advance past its cache; the
    state after a window's last token is never read, so that advance must not happen."""
    priors, lik, _ = small_problem()
    counting = [CountingPrior(p) for p in priors]
    y = torch.randint(0, 5, (steps,), generator=torch.Generator().manual_seed(0))
    result = separate("lass", counting, lik, y, search=search, num_candidates=3)
    assert result.tokens.shape[2] == steps
    assert [p.advances for p in counting] == [steps - 1, steps - 1]


def test_pipeline_windows_do_not_advance_past_their_end():
    priors, lik, _ = small_problem(k=8)

    class ContextCounting(CountingPrior):
        context = 6  # window 5 + prefix 1

    counting = [ContextCounting(p) for p in priors]
    mixture = np.random.default_rng(0).uniform(0, 14, 23)

    class Codec:
        hop_length, sample_rate = 1, 22050

        def encode(self, audio):
            return audio.round().clamp(0, 7).long()

        def decode(self, tokens):
            return tokens.float()

    separate_waveform(
        "lass",
        Codec(),
        counting,
        lik,
        mixture,
        num_candidates=2,
        window_tokens=5,
        prefix_tokens=1,
        consistency="none",
    )
    # windows of 5, 5, 5, 5, 3 tokens: 4 + 4 + 4 + 4 + 2 advances, plus 1 prefix token each
    # for the 4 windows after the first (MarkovPrior has no prime(): advanced token by token)
    assert [p.advances for p in counting] == [18 + 4, 18 + 4]


def test_beam_returns_fewer_rows_when_fewer_paths_exist():
    priors, lik, _ = small_problem()
    empty = separate(
        "lass", priors, lik, torch.zeros(0, dtype=torch.long), search="beam", num_candidates=4
    )
    assert empty.tokens.shape == (1, 2, 0) and empty.log_scores.shape == (1,)
    one = separate("lass", priors, lik, torch.tensor([2]), search="beam", num_candidates=100)
    assert one.tokens.shape == (25, 2, 1)  # every (a, b) pair once, no padding


def test_prefix_scores_are_shape_checked():
    priors, lik, _ = small_problem()
    y = torch.tensor([2, 1])
    with pytest.raises(ValueError, match=r"prefix_scores must be \(2,\)"):
        separate("lass", priors, lik, y, num_candidates=2, prefix_scores=torch.zeros(5))
    with pytest.raises(ValueError, match=r"prefix_scores must be \(3,\)"):
        separate(
            "lass",
            priors,
            lik,
            y,
            search="beam",
            num_candidates=2,
            prefix=torch.zeros(3, 2, 1, dtype=torch.long),
            prefix_scores=torch.zeros(2),
        )
    ok = separate("lass", priors, lik, y, num_candidates=2, prefix_scores=torch.tensor([1.0, 2.0]))
    assert ok.log_scores.shape == (2,)


def test_markov_prior_rejects_zero_rows():
    with pytest.raises(ValueError, match="initial weights are all zero"):
        MarkovPrior(torch.zeros(3), torch.ones(3, 3))
    transition = torch.ones(3, 3)
    transition[1] = 0
    with pytest.raises(ValueError, match=r"transition rows \[1\] are all zero"):
        MarkovPrior(torch.ones(3), transition)


@pytest.mark.parametrize("bad", [-1, 4])
def test_from_sparse_checks_index_ranges(bad):
    k = 4
    indices = torch.tensor([[0, 1], [1, 2], [2, 3]])
    broken = indices.clone()
    broken[1, 1] = bad
    counts = torch.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match=r"range|lie in"):
        CountLikelihood.from_sparse(broken, counts, k)
    with pytest.raises(ValueError, match=r"range|lie in"):
        ChainLikelihood.from_sparse([broken, indices], [counts, counts], k)
    with pytest.raises(ValueError, match="range"):
        MarginalLikelihood.from_sparse(broken, counts, num_sources=2, num_tokens=k)
    sources = indices.clone()
    sources[0, 0] = 2 if bad > 0 else -1  # source index outside [0, 2)
    with pytest.raises(ValueError, match="range"):
        MarginalLikelihood.from_sparse(sources, counts, num_sources=2, num_tokens=k)


def test_marginal_counts_are_exact_above_float32():
    """Counts above 2^24 are not representable in float32; p(y | z) must use them exactly."""
    counts = torch.zeros(2, 3, 3, dtype=torch.float64)
    counts[:, :, 0] = 2.0**24 + 1
    counts[:, :, 1] = 1.0
    lik = MarginalLikelihood(counts, 0.0)
    expected = (2.0**24 + 1) / (2.0**24 + 2)
    assert lik.column(0)[0, 0].item() == expected
    assert lik.log_prob(torch.tensor([[0, 1]]), torch.tensor([0]))[0, 0].exp().item() == (
        pytest.approx(expected, rel=1e-15)
    )
    assert lik.column(1)[0, 0].item() == 1.0 / (2.0**24 + 2)
