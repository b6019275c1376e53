"""Likelihoods p(mixture token | source tokens), built from raw counts or a codebook (or,
for lqvae, of the mixture's continuous latent)."""

from latsep.models.likelihood.backoff import Backoff, BackoffTable
from latsep.models.likelihood.chain import ChainLikelihood
from latsep.models.likelihood.count import CountLikelihood
from latsep.models.likelihood.count_table import CountTable, SparseCounts
from latsep.models.likelihood.gaussian import GaussianLikelihood, nearest_midpoints
from latsep.models.likelihood.latent_count import LatentCountLikelihood
from latsep.models.likelihood.latent_gaussian import LatentGaussianLikelihood
from latsep.models.likelihood.marginal import MarginalLikelihood
from latsep.models.likelihood.pair_slice import PairSlice

__all__ = [
    "Backoff",
    "BackoffTable",
    "ChainLikelihood",
    "CountLikelihood",
    "CountTable",
    "GaussianLikelihood",
    "LatentCountLikelihood",
    "LatentGaussianLikelihood",
    "MarginalLikelihood",
    "PairSlice",
    "SparseCounts",
    "nearest_midpoints",
]
