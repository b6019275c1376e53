"""The knobs of a separation: as a client asks for them, and as a worker runs them.

A knob left out takes the serving bundle's default for the method, else the global one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from latsep.methods import SearchSettings

Consistency = Literal["wiener", "ensemble", "none"]
Search = Literal["sample", "beam", "smc", "mixed"]

# What an option left out means when the serving bundle records no default for the method
# (num_candidates' global default is the setting `default_num_candidates`).
GLOBAL_DEFAULTS: dict[str, Any] = {
    "search": "sample",
    "temperature": 1.0,
    "top_k": None,
    "likelihood_weight": 1.0,
}
TUNABLE = ("num_candidates", "search", "temperature", "top_k", "likelihood_weight")
# The worker seeds torch.Generator with it, which takes an unsigned 64-bit integer: a larger
# seed would pass the API and then fail the job.
SEED_MAX = 2**64 - 1


class ResolvedOptions(BaseModel):
    """The knobs a separation runs with; identical options and seed give identical stems."""

    num_candidates: int = Field(ge=1)
    search: Search = "sample"
    temperature: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    top_k: int | None = Field(default=None, ge=1, description="null: no top-k")
    likelihood_weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    seed: int = Field(ge=0, le=SEED_MAX)
    consistency: Consistency = "ensemble"

    def search_settings(self) -> SearchSettings:
        """The token search's knobs (seed and consistency are the waveform's)."""
        return SearchSettings(**{name: getattr(self, name) for name in TUNABLE})


class SeparationOptions(BaseModel):
    """The knobs of one separation as asked for. A knob left null takes the serving bundle's
    default for the method, else the global one (`resolve`)."""

    num_candidates: int | None = Field(default=None, ge=1)
    search: Search | None = None
    temperature: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    top_k: int | None = Field(default=None, ge=1)
    likelihood_weight: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    seed: int = Field(ge=0, le=SEED_MAX)
    consistency: Consistency = "ensemble"

    def resolve(
        self, bundle_defaults: Mapping[str, Any], default_num_candidates: int
    ) -> ResolvedOptions:
        """Fill every knob left out: the bundle's default for the method, else the global.

        A bundle's `top_k: null` is a real default (no top-k), hence `in`, not `.get`.
        """
        fallback = {**GLOBAL_DEFAULTS, "num_candidates": default_num_candidates}
        values: dict[str, Any] = {}
        for name in TUNABLE:
            asked = getattr(self, name)
            if asked is not None:
                values[name] = asked
            elif name in bundle_defaults:
                values[name] = bundle_defaults[name]
            else:
                values[name] = fallback[name]
        return ResolvedOptions(**values, seed=self.seed, consistency=self.consistency)
