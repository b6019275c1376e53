"""Autoregressive priors over codec tokens."""

from latsep.models.prior.protocol import Prior

__all__ = ["Prior"]
