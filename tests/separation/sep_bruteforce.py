"""Brute-force references for the separation tests: dense tables, enumeration, chi-square."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from scipy import stats

from latsep.models.prior.markov import MarkovPrior


def normalised(counts: torch.Tensor, smoothing: float) -> torch.Tensor:
    """(c + s) / (Σ_last c + K s) over the last axis, 0 where undefined (written independently)."""
    counts = counts.double()
    k = counts.shape[-1]
    denominator = counts.sum(-1, keepdim=True) + k * smoothing
    out = torch.zeros_like(counts)
    ok = (denominator > 0).expand_as(counts)
    out[ok] = ((counts + smoothing) / denominator.clamp(min=1e-300))[ok]
    return out


def prior_probs(prior: MarkovPrior, temperature: float = 1.0, top_k: int | None = None):
    """The T = 1 prior after temperature / top-k, as the engine documents it, (K,)."""
    logits = prior.log_initial.double() / temperature
    if top_k is not None:
        keep = logits.topk(top_k).indices
        mask = torch.full_like(logits, float("-inf"))
        mask[keep] = logits[keep]
        logits = mask
    return logits.softmax(0)


def random_counts(k: int, generator: torch.Generator, density: float = 0.5, scale: int = 5):
    """Sparse-ish integer counts (K, K, K) with some all-zero (a, b) pairs."""
    counts = torch.randint(0, scale, (k, k, k), generator=generator).double()
    counts *= torch.rand(k, k, k, generator=generator) < density
    return counts


def markov_log_prob(prior: MarkovPrior, paths) -> torch.Tensor:
    """log p(path) under a Markov prior for each row of `paths` (C, T) (or one path (T,)),
    float64: the initial term and every transition, written independently of the engine."""
    paths = torch.as_tensor(paths, dtype=torch.long)
    single = paths.dim() == 1
    paths = paths.reshape(-1, paths.shape[-1])
    log_p = prior.log_initial.double()[paths[:, 0]]
    log_p = log_p + prior.log_transition.double()[paths[:, :-1], paths[:, 1:]].sum(1)
    return log_p[0] if single else log_p


def pair_path_posterior(priors, table, ys, factors=None) -> np.ndarray:
    """p(a_1..T, b_1..T | y_1..T) of two Markov sources by enumeration over their whole
    paths, flattened as (a_1, b_1, a_2, b_2, ...); `factors` (T, 2, K), optional, multiply
    each step's codes (separate's source_factors)."""
    k, steps = table.shape[0], len(ys)
    probs = np.zeros((k,) * (2 * steps))
    for path in itertools.product(range(k), repeat=2 * steps):
        a, b = path[0::2], path[1::2]
        log_prior = sum(float(markov_log_prob(p, s)) for p, s in zip(priors, (a, b), strict=True))
        value = math.exp(log_prior)
        for t, y in enumerate(ys):
            value *= float(table[a[t], b[t], y])
            if factors is not None:
                value *= float(factors[t, 0, a[t]] * factors[t, 1, b[t]])
        probs[path] = value
    return probs / probs.sum()


def random_priors(n: int, k: int, generator: torch.Generator, sharpness: float = 1.0):
    return [MarkovPrior.random(k, generator=generator, sharpness=sharpness) for _ in range(n)]


def chain_posterior(priors_p, levels, y: int, weight: float = 1.0) -> torch.Tensor:
    """Joint posterior Π_i p_i(z_i) · L(y | z)^w by full enumeration, (K,)*n, where
    L(y | z) = Σ_(m_2..m_(n-1)) Π_l p_l(m_(l+2) | m_(l+1), z_(l+2)) (DESIGN.md). The engine
    samples it for n = 2 with any w and for n >= 3 with w = 1 (it rejects the rest)."""
    n, k = len(priors_p), priors_p[0].shape[0]
    post = torch.zeros((k,) * n, dtype=torch.float64)
    for z in itertools.product(range(k), repeat=n):
        prior = float(np.prod([priors_p[i][z[i]] for i in range(n)]))
        # Sum over hidden partial mixtures m_2..m_(n-1), then temper the whole likelihood.
        lik = 0.0
        for hidden in itertools.product(range(k), repeat=n - 2):
            m = [z[0], *hidden, y]
            term = 1.0
            for level in range(n - 1):
                term *= float(levels[level][m[level], z[level + 1], m[level + 1]])
            lik += term
        post[z] = prior * lik**weight
    return post / post.sum()


def assert_samples_match(samples: np.ndarray, probs: np.ndarray, alpha: float = 1e-4) -> None:
    """Chi-square goodness of fit of integer `samples` to `probs` (flattened outcomes).

    Outcomes with probability 0 must never appear; cells expected < 5 are pooled. With a
    fixed seed the test is deterministic; alpha = 1e-4 is the stated tolerance.
    """
    probs = np.asarray(probs, dtype=np.float64).ravel()
    probs = probs / probs.sum()
    observed = np.bincount(samples, minlength=probs.size).astype(np.float64)
    assert observed[probs == 0].sum() == 0, "drew an outcome of probability 0"
    expected = probs * samples.size
    big = expected >= 5
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    if obs.size < 2:
        return
    p_value = stats.chisquare(obs, exp).pvalue
    assert p_value > alpha, f"chi-square p = {p_value:.2e}"
    # A second, intuitive bound: total variation within 4 standard errors of its scale.
    tv = 0.5 * np.abs(observed / samples.size - probs).sum()
    assert tv < 4 * np.sqrt(probs.size / samples.size), f"TV {tv:.3f}"


def flat_index(tokens: torch.Tensor, k: int) -> np.ndarray:
    """(C, N) tuples -> (C,) row-major indices into (K,)*N."""
    n = tokens.shape[1]
    weights = k ** torch.arange(n - 1, -1, -1)
    return (tokens * weights).sum(1).numpy()
