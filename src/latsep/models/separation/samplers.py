"""Per-step exact samplers, one per likelihood family.

Each draws, for every candidate row at once, the sources' tokens of one step from

    ∝ Π_i u_i(z_i) · L(y | z)^w

where u_i are the (tempered, top-k) prior weights, and returns w·log L of the draw for the
candidate's score. A row where every tuple has zero likelihood falls back to the priors
alone (likelihood treated as uniform for that step) and scores 0 for the likelihood term.

Each also returns the step's evidence, log Σ_z Π_i u_i(z_i) · L(y | z)^w with the weights'
scale restored (`SourceWeights.log_scale`): untempered and unpruned, that is the predictive
probability of y_t given the row's history, the incremental importance weight of sequential
Monte Carlo whose proposal is this very draw (engine.py, search "smc"). -inf on fallback rows.
mlass-pe's sources are independent given y: its evidence comes per source, and sequential
Monte Carlo resamples each source's candidates on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from latsep.models.likelihood.chain import ChainLikelihood
from latsep.models.likelihood.marginal import MarginalLikelihood
from latsep.models.likelihood.pair_slice import PairSlice
from latsep.models.separation.pair_sampler import draw_rows, sample_pairs
from latsep.models.separation.weights import SourceWeights


@dataclass(frozen=True)
class StepDraw:
    tokens: torch.Tensor  # (C, N) long
    log_likelihood: torch.Tensor  # (C,) float64, w·log L of the drawn tuple (0 on fallback)
    fallback: torch.Tensor  # (C,) bool
    hidden: torch.Tensor | None = None  # (C, N - 2) long: mlass-bp partial mixtures, -1 on fallback
    # (C,) float64, see the module docstring; (C, N) per source from a sampler whose sources
    # are independent given y (`independent_sources`), which also fills the next two
    log_evidence: torch.Tensor | None = None
    source_log_likelihood: torch.Tensor | None = None  # (C, N): each source's w·log L term
    source_fallback: torch.Tensor | None = None  # (C, N) bool: that source fell back


class PairLikelihood(Protocol):
    """What a two-source likelihood offers the engine (Count and Gaussian likelihoods)."""

    @property
    def num_tokens(self) -> int: ...

    def log_prob(self, z1: torch.Tensor, z2: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...

    def pair_slice(self, targets: torch.Tensor, weight: float) -> PairSlice: ...


class StepSampler(Protocol):
    independent_sources: bool  # True: the draw's evidence comes per source (C, N)

    def sample(
        self, weights: list[SourceWeights], y: int, generator: torch.Generator | None
    ) -> StepDraw: ...


class PairSampler:
    """Two sources, joint likelihood L(y | z1, z2): lass, hybrid (counts), lqvae (Gaussian)."""

    independent_sources = False

    def __init__(self, likelihood: PairLikelihood, weight: float) -> None:
        self.likelihood = likelihood
        self.weight = weight

    def sample(
        self, weights: list[SourceWeights], y: int, generator: torch.Generator | None
    ) -> StepDraw:
        rows = weights[0].values.shape[0]
        targets = torch.full((rows,), y, dtype=torch.long)
        draw = sample_pairs(
            self.likelihood.pair_slice(targets, self.weight), weights[0], weights[1], generator
        )
        log_lik = self.weight * self.likelihood.log_prob(draw.a, draw.b, targets)
        log_lik = torch.where(draw.fallback, 0.0, log_lik)
        evidence = _scaled(draw.log_mass, weights[0], weights[1])
        return StepDraw(torch.stack([draw.a, draw.b], 1), log_lik, draw.fallback, None, evidence)


class ChainSampler:
    """MLASS-BP: exact joint draw through the chain of hidden partial-mixture tokens.

    Forward filtering: α_1 = u_1 over m_1 = z_1, α_(l+2)(m') = Σ_(m, z) α_(l+1)(m) u_(l+2)(z)
    p_l(m' | m, z)^w. Backward sampling: (m_(n-1), z_n) from α_(n-1)(m) u_n(z) p(y | m, z)^w,
    then down the levels with each sampled m as the next level's output. Hidden levels are
    summed out, never pinned to y. The weight w raises every level's conditional to w: for
    n = 2 that is L^w exactly; for n >= 3 separate() only allows w = 1 (L^w has no chain
    factorisation, and Π_l p_l^w is not it). Score: w·Σ_l log p_l(m_(l+2) | m_(l+1), z_(l+2))
    along the sampled hidden tokens (the complete-data likelihood), which are returned too.
    """

    independent_sources = False

    def __init__(self, likelihood: ChainLikelihood, weight: float) -> None:
        self.likelihood = likelihood
        self.weight = weight

    def sample(
        self, weights: list[SourceWeights], y: int, generator: torch.Generator | None
    ) -> StepDraw:
        levels = self.likelihood.levels
        n = len(levels) + 1
        rows = weights[0].values.shape[0]
        messages = [weights[0]]  # α_(l+1) as SourceWeights: hidden levels are unrestricted
        # log of what the messages were divided by (with the sources' own weight scales)
        log_scale = _log_scale(weights[0])
        for level in range(n - 2):
            alpha = levels[level].propagate(
                messages[-1].values,
                weights[level + 1].values,
                self.weight,
                right_support=weights[level + 1].support,
            )
            scale = alpha.max(1, keepdim=True).values
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            alpha = alpha / scale
            log_scale = log_scale + _log_scale(weights[level + 1]) + scale.squeeze(1).log()
            messages.append(SourceWeights(alpha, None, log_scale))

        tokens = torch.zeros(rows, n, dtype=torch.long)
        target = torch.full((rows,), y, dtype=torch.long)
        fallback = torch.zeros(rows, dtype=torch.bool)
        log_lik = torch.zeros(rows, dtype=torch.float64)
        evidence = torch.zeros(rows, dtype=torch.float64)
        hidden_inputs: dict[int, torch.Tensor] = {}  # level -> its sampled left input m
        for level in reversed(range(n - 1)):
            slc = levels[level].pair_slice(target, self.weight)
            draw = sample_pairs(slc, messages[level], weights[level + 1], generator)
            if level == n - 2:  # the top level's mass is the whole step's, up to the scales
                evidence = _scaled(draw.log_mass, messages[level], weights[level + 1])
            hidden_inputs[level] = draw.a
            tokens[:, level + 1] = draw.b
            log_lik += levels[level].prob(draw.a, draw.b, target).log()
            fallback |= draw.fallback
            target = draw.a
        tokens[:, 0] = target
        # m_(l+1) is level l's left input, for the hidden levels l = 1 .. n - 2: (C, N - 2)
        hidden = torch.zeros(rows, n - 2, dtype=torch.long)
        for level in range(1, n - 1):
            hidden[:, level - 1] = hidden_inputs[level]
        if fallback.any():  # the priors alone, for every source of a failed row
            independent = torch.stack([draw_rows(w.values, generator) for w in weights], 1)
            tokens = torch.where(fallback[:, None], independent, tokens)
            hidden = torch.where(fallback[:, None], -1, hidden)
        log_lik = torch.where(fallback, 0.0, self.weight * log_lik)
        evidence = torch.where(fallback, -math.inf, evidence)
        return StepDraw(tokens, log_lik, fallback, hidden, evidence)


class MarginalSampler:
    """MLASS-PE: each source independently from ∝ u_i(z) · p(y | z)^w."""

    independent_sources = True

    def __init__(self, likelihood: MarginalLikelihood, weight: float) -> None:
        self.likelihood = likelihood
        self.weight = weight

    def sample(
        self, weights: list[SourceWeights], y: int, generator: torch.Generator | None
    ) -> StepDraw:
        column = self.likelihood.column(y)  # (N, K) p(y | z_i)
        values = torch.stack([w.values for w in weights], 1)  # (C, N, K)
        rows, n, k = values.shape
        posterior = (values * column.pow(self.weight)).reshape(rows * n, k)
        mass = posterior.sum(1)
        impossible = ~(mass > 0)
        # A source with no possible code falls back to its prior alone.
        posterior = torch.where(impossible[:, None], values.reshape(rows * n, k), posterior)
        tokens = draw_rows(posterior, generator).view(rows, n)
        log_lik = column.gather(1, tokens.T).T.log()  # (C, N)
        log_lik = torch.where(impossible.view(rows, n), 0.0, self.weight * log_lik)
        scales = torch.stack([_log_scale(w) for w in weights], 1)  # (C, N)
        # Each source's own evidence: the sources are independent given y (the row's is
        # their product).
        evidence = mass.log().view(rows, n) + scales
        impossible = impossible.view(rows, n)
        return StepDraw(
            tokens, log_lik.sum(1), impossible.any(1), None, evidence, log_lik, impossible
        )


def _log_scale(weights: SourceWeights) -> torch.Tensor:
    """(C,) the log factor that restores the weights' scale (0 where none was kept)."""
    if weights.log_scale is None:
        return torch.zeros(weights.values.shape[0], dtype=torch.float64)
    return weights.log_scale.to(torch.float64)


def _scaled(
    log_mass: torch.Tensor | None, left: SourceWeights, right: SourceWeights
) -> torch.Tensor | None:
    """A pair draw's log mass with both sides' weight scales restored."""
    if log_mass is None:
        return None
    return log_mass + _log_scale(left) + _log_scale(right)
