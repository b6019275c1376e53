"""Gibbs sweeps redraw each source from its exact conditional given the others and y.

From a fixed start, one sweep's outcome distribution is the product of the conditionals
(source 1 given the start's others, source 2 given the new source 1, …), enumerated here by
brute force from the joint posteriors of sep_bruteforce; 20,000 rows are compared with it by
chi-square at alpha = 1e-4 (fixed seeds: deterministic).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from sep_bruteforce import (
    assert_samples_match,
    chain_posterior,
    flat_index,
    normalised,
    prior_probs,
    random_counts,
    random_priors,
)

from latsep.models.likelihood import ChainLikelihood, CountLikelihood, MarginalLikelihood
from latsep.models.separation import separate
from latsep.models.separation.engine import step_sampler
from latsep.models.separation.refine import gibbs_sweeps

DRAWS = 20_000


def sweep(method, priors, likelihood, y, start, weight=1.0, seed=0, **options):
    tokens = torch.tensor(start, dtype=torch.long).reshape(1, len(priors), -1)
    return gibbs_sweeps(
        step_sampler(method, likelihood, weight),
        priors,
        torch.tensor(y, dtype=torch.long).reshape(-1),
        tokens.expand(DRAWS, -1, -1),
        sweeps=1,
        generator=torch.Generator().manual_seed(seed),
        **options,
    )


def one_sweep_from(joint: torch.Tensor, start: tuple[int, ...]) -> torch.Tensor:
    """The distribution after one sweep (sources in order) at T = 1, from the joint
    posterior (K,)*n: each source redrawn ∝ joint with the others at their current values."""
    n, k = joint.dim(), joint.shape[0]
    out = torch.zeros_like(joint)
    for outcome in itertools.product(range(k), repeat=n):
        current, p = list(start), 1.0
        for i in range(n):
            index = tuple(slice(None) if j == i else current[j] for j in range(n))
            conditional = joint[index]
            p *= float(conditional[outcome[i]] / conditional.sum())
            current[i] = outcome[i]
        out[outcome] = p
    return out


@pytest.mark.parametrize("weight", [1.0, 2.5])
def test_a_sweep_redraws_each_of_two_sources_from_its_conditional(weight):
    g = torch.Generator().manual_seed(40)
    k = 5
    counts = random_counts(k, g, density=0.7)
    priors = random_priors(2, k, g)
    y, start = 3, (1, 4)
    table = normalised(counts, 0.1)
    joint = prior_probs(priors[0])[:, None] * prior_probs(priors[1])[None, :]
    joint = joint * table[:, :, y].pow(weight)
    tokens = sweep("lass", priors, CountLikelihood(counts, 0.1), y, start, weight)
    expected = one_sweep_from(joint, start)
    assert_samples_match(flat_index(tokens[:, :, 0], k), expected.numpy())


@pytest.mark.parametrize("start", [(0, 1, 2), (3, 3, 0)])
def test_a_sweep_over_three_sources_follows_the_chain_conditionals(start):
    g = torch.Generator().manual_seed(41)
    k = 4
    levels = [random_counts(k, g, density=0.6) for _ in range(2)]
    priors = random_priors(3, k, g)
    y = 2
    joint = chain_posterior(
        [prior_probs(p) for p in priors], [normalised(c, 0.2) for c in levels], y
    )
    tokens = sweep("mlass-bp", priors, ChainLikelihood(levels, 0.2), y, start)
    expected = one_sweep_from(joint, start)
    assert_samples_match(flat_index(tokens[:, :, 0], k), expected.numpy())


def test_sweeps_keep_the_posterior():
    """Rows drawn from the exact T = 1 posterior stay distributed as it after two sweeps."""
    g = torch.Generator().manual_seed(42)
    k = 4
    levels = [random_counts(k, g, density=0.6) + 0.2 for _ in range(2)]
    priors = random_priors(3, k, g)
    y = torch.tensor([1])
    likelihood = ChainLikelihood(levels, 0.0)
    first = separate(
        "mlass-bp",
        priors,
        likelihood,
        y,
        num_candidates=DRAWS,
        generator=torch.Generator().manual_seed(1),
    ).tokens
    tokens = gibbs_sweeps(
        step_sampler("mlass-bp", likelihood, 1.0),
        priors,
        y,
        first,
        sweeps=2,
        generator=torch.Generator().manual_seed(2),
    )
    assert (tokens != first).any()
    joint = chain_posterior(
        [prior_probs(p) for p in priors], [normalised(c, 0.0) for c in levels], 1
    )
    assert_samples_match(flat_index(tokens[:, :, 0], k), joint.numpy())


def test_two_steps_condition_on_the_redrawn_history_and_the_prefix():
    """T = 2 with a one-token prefix: a_t from ∝ p_a(a_t | a_(t-1)') · L(y_t | a_t, b_t) along
    the *redrawn* a, then b the same way given the new a."""
    g = torch.Generator().manual_seed(43)
    k = 3
    counts = random_counts(k, g, density=0.8) + 0.5
    priors = random_priors(2, k, g, sharpness=2.0)
    table = normalised(counts, 0.0)
    y, start, prefix = [1, 2], [[0, 2], [1, 1]], (2, 0)  # start[i] = source i's tokens
    transition = [p.log_transition.double().exp() for p in priors]

    def redraw(i: int, others: list[int]) -> torch.Tensor:
        """P(z_i,1, z_i,2) with the other source at `others`, (K, K)."""
        out = torch.zeros(k, k, dtype=torch.float64)
        previous = prefix[i]
        for z1, z2 in itertools.product(range(k), repeat=2):
            p = 1.0
            for t, (z, before) in enumerate(((z1, previous), (z2, z1))):
                pair = (slice(None), others[t]) if i == 0 else (others[t], slice(None))
                weights = transition[i][before] * table[(*pair, y[t])]
                p *= float(weights[z] / weights.sum())
            out[z1, z2] = p
        return out

    expected = torch.zeros((k,) * 4, dtype=torch.float64)  # [a1, a2, b1, b2]
    first = redraw(0, start[1])
    for a1, a2 in itertools.product(range(k), repeat=2):
        expected[a1, a2] = first[a1, a2] * redraw(1, [a1, a2])
    rows = torch.tensor(prefix).reshape(1, 2, 1).expand(DRAWS, -1, -1)
    tokens = sweep("lass", priors, CountLikelihood(counts, 0.0), y, start, prefix=rows)
    assert_samples_match(flat_index(tokens.reshape(DRAWS, 4), k), expected.numpy())


def test_mlass_pe_and_negative_sweeps_are_refused():
    g = torch.Generator().manual_seed(44)
    priors = random_priors(3, 3, g)
    tokens = torch.zeros(2, 3, 1, dtype=torch.long)
    marginal = MarginalLikelihood(torch.rand(3, 3, 3, generator=g))
    with pytest.raises(ValueError, match="independent"):
        gibbs_sweeps(
            step_sampler("mlass-pe", marginal, 1.0), priors, torch.tensor([0]), tokens, sweeps=1
        )
    chain = ChainLikelihood([random_counts(3, g) + 1 for _ in range(2)])
    with pytest.raises(ValueError, match="sweeps"):
        gibbs_sweeps(
            step_sampler("mlass-bp", chain, 1.0), priors, torch.tensor([0]), tokens, sweeps=-1
        )
    same = gibbs_sweeps(
        step_sampler("mlass-bp", chain, 1.0), priors, torch.tensor([0]), tokens, sweeps=0
    )
    assert torch.equal(same, tokens)
