"""Autoregressive priors over codec tokens."""

from latsep.models.prior.protocol import Prior
from latsep.models.prior.transformer import KVCache, PriorConfig, PriorState, TransformerPrior

__all__ = ["KVCache", "Prior", "PriorConfig", "PriorState", "TransformerPrior"]
