"""How the science serves each method: the likelihood a bundle builds for it from its stored
tables, the likelihood classes the engine accepts, and the per-step sampler that draws from
them. With `latsep.methods` (the torch-free facts and option rules) this is the only place a
method is named: adding one is its `Method` there, its likelihood, and an entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from latsep.models.likelihood import (
    Backoff,
    ChainLikelihood,
    CountLikelihood,
    GaussianLikelihood,
    LatentCountLikelihood,
    LatentGaussianLikelihood,
    MarginalLikelihood,
)
from latsep.models.separation.samplers import (
    ChainSampler,
    MarginalSampler,
    PairSampler,
    StepSampler,
)

Levels = list[tuple[torch.Tensor, torch.Tensor]]  # a table's levels: (indices (3, nnz), counts)


@dataclass(frozen=True)
class Tables:
    """What a bundle hands a builder: its stored tables for one request, in its order."""

    sources: tuple[str, ...]  # the order the caller feeds priors in
    stored: tuple[str, ...]  # the bundle's stored order of the same set
    tables: Mapping[str, Levels]  # table name ("kind:a+b[+c]") -> levels, stored order
    num_tokens: int
    smoothing: float
    backoff: Backoff | None  # of the joint count tables; None: additive smoothing
    codebook: torch.Tensor  # (K, D) on the CPU
    gaussian_sigma: float | None  # LQ-VAE's σ on codewords (lq bundles)
    latent_sigma: float | None  # σ of the continuous-latent term; None: tokens only
    bundle: str  # for messages

    def levels(self, kind: str) -> Levels:
        return list(self.tables[kind + ":" + "+".join(self.stored)])

    def pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair table's (indices [z1, z2, y], counts) in the caller's order."""
        indices, counts = self.tables["lass:" + "+".join(self.stored)][0]
        if self.sources != self.stored:
            indices = indices[[1, 0, 2]]  # swap z1 and z2
        return indices, counts


@dataclass(frozen=True)
class MethodModel:
    likelihoods: tuple[type, ...]  # what the engine accepts for the method
    sampler: Callable[[Any, float], StepSampler]  # (likelihood, weight) -> per-step sampler
    build: Callable[[Tables], Any]  # a bundle's likelihood for one request


def _counts(t: Tables) -> CountLikelihood:
    indices, counts = t.pair()
    return CountLikelihood.from_sparse(
        indices,
        counts,
        t.num_tokens,
        t.smoothing,
        backoff=t.backoff,
        latent_codebook=None if t.latent_sigma is None else t.codebook,
        latent_sigma=t.latent_sigma,
    )


def _gaussian(t: Tables) -> GaussianLikelihood:
    if t.gaussian_sigma is None:
        raise ValueError(f"bundle {t.bundle} records no gaussian_sigma")
    return GaussianLikelihood(t.codebook, t.gaussian_sigma, latent_sigma=t.latent_sigma)


def _chain(t: Tables) -> ChainLikelihood:
    k, s = t.num_tokens, t.smoothing
    if len(t.sources) == 2:  # the pair table: mlass-bp with two sources is LASS
        indices, counts = t.pair()
        return ChainLikelihood.from_sparse([indices], [counts], k, s, backoff=t.backoff)
    levels = t.levels("chain")
    if t.sources[2:] != t.stored[2:]:
        raise ValueError(
            f"mlass-bp's chain of bundle {t.bundle} is stored for the order {t.stored}: the "
            f"partial means fix every position after the first two; reorder to that order"
        )
    if t.sources[:2] != t.stored[:2]:
        first, first_counts = levels[0]
        levels = [(first[[1, 0, 2]], first_counts), *levels[1:]]
    return ChainLikelihood.from_sparse(
        [i for i, _ in levels], [c for _, c in levels], k, s, backoff=t.backoff
    )


def _marginal(t: Tables) -> MarginalLikelihood:
    k, s = t.num_tokens, t.smoothing
    if len(t.sources) == 2:  # p(y | z_i) from the pair table: sum out the other source
        indices, counts = t.pair()
        marginal = torch.cat(
            [
                torch.stack([torch.zeros_like(indices[0]), indices[0], indices[2]]),
                torch.stack([torch.ones_like(indices[1]), indices[1], indices[2]]),
            ],
            dim=1,
        )
        return MarginalLikelihood.from_sparse(marginal, torch.cat([counts, counts]), 2, k, s)
    indices, counts = t.levels("marginal")[0]
    return marginal_in_order(indices, counts, t.sources, t.stored, k, s)


def marginal_in_order(
    indices: torch.Tensor,
    counts: torch.Tensor,
    sources: tuple[str, ...],
    stored: tuple[str, ...],
    num_tokens: int,
    smoothing: float,
) -> MarginalLikelihood:
    """A marginal-shaped table [i, z_i, y] stored for the sources in `stored` order, as a
    MarginalLikelihood whose rows follow `sources` (the same set in the caller's order)."""
    position = torch.tensor([sources.index(name) for name in stored])
    indices = torch.stack([position[indices[0]], indices[1], indices[2]])
    return MarginalLikelihood.from_sparse(indices, counts, len(sources), num_tokens, smoothing)


MODELS: dict[str, MethodModel] = {
    "lass": MethodModel((CountLikelihood,), PairSampler, _counts),
    "lqvae": MethodModel((GaussianLikelihood, LatentGaussianLikelihood), PairSampler, _gaussian),
    "hybrid": MethodModel((CountLikelihood, LatentCountLikelihood), PairSampler, _counts),
    "mlass-bp": MethodModel((ChainLikelihood,), ChainSampler, _chain),
    "mlass-pe": MethodModel((MarginalLikelihood,), MarginalSampler, _marginal),
}
