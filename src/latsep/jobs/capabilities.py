"""What each live worker serves, as it registers itself: the API routes jobs and lists
methods from these records alone."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

# A request naming no sources for a method that offers several sets (lass, lqvae and hybrid
# separate pairs) gets this pair when it is offered.
DEFAULT_PAIR = ("bass", "drums")


class BundleInfo(BaseModel):
    """What one loaded bundle serves: per method, the source sets it has tables for."""

    name: str
    sources: list[str]
    methods: list[str]
    max_sources: dict[str, int]
    source_sets: dict[str, list[list[str]]] = Field(default_factory=dict)
    sample_rate: int
    separation_defaults: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description="per method and source count (as a string), the bundle's tuned option defaults",
    )

    def serves(self, method: str, sources: Sequence[str]) -> bool:
        wanted = sorted(sources)
        return any(sorted(s) == wanted for s in self.source_sets.get(method, []))

    def default_sources(self, method: str) -> list[str] | None:
        """What a request naming no sources separates with `method`: the set of all the
        bundle's sources, else its only set, else `DEFAULT_PAIR` (bass, drums) when offered;
        None when the request must choose."""
        sets = self.source_sets.get(method, [])
        everything = [x for x in sets if sorted(x) == sorted(self.sources)]
        if everything or len(sets) == 1:
            return list((everything or sets)[0])
        pair = [x for x in sets if sorted(x) == sorted(DEFAULT_PAIR)]
        return list(pair[0]) if pair else None

    def defaults_for(self, method: str, num_sources: int) -> dict[str, Any]:
        """The tuned defaults for `method` with `num_sources` sources ({} if none)."""
        return dict(self.separation_defaults.get(method, {}).get(str(num_sources), {}))


def first_serving(bundles: Sequence[BundleInfo], method: str, sources: Sequence[str]) -> int | None:
    """Index of the first bundle serving `method` for exactly this set of sources, or None:
    the one routing rule, the API's (which bundle's defaults a request gets) and the
    worker's (which bundle separates it)."""
    return next((i for i, b in enumerate(bundles) if b.serves(method, sources)), None)


class WorkerInfo(BaseModel):
    """A live worker's registration: refreshed on every heartbeat, gone when it dies."""

    name: str
    hostname: str
    pid: int
    device: str
    queues: list[str]
    bundles: list[BundleInfo]
    started_at: float
    heartbeat_at: float = Field(default_factory=time.time)
