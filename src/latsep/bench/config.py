"""What one benchmark run measures: the run's options and the per-method defaults.

Every separation setting the benchmark uses comes from `METHOD_DEFAULTS` unless the caller
overrides it, so the table below is the one place to read (and change) what "default" means.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

# The stems each source count separates (the corpus's names).
SOURCE_SETS: dict[int, tuple[str, ...]] = {
    2: ("bass", "drums"),
    3: ("bass", "drums", "other"),
}
METHOD_ORDER = ("lass", "lqvae", "hybrid", "mlass-bp", "mlass-pe")
TWO_SOURCE_ONLY = frozenset({"lass", "lqvae", "hybrid"})


@dataclass(frozen=True)
class MethodSettings:
    """The sampler's knobs for one method (search is always "sample": every method has it)."""

    num_candidates: int
    temperature: float
    top_k: int | None
    likelihood_weight: float


# Exact sampling (no top-k, untempered, likelihood weight 1) with 16 candidates, the
# pipeline's default: the benchmark measures the methods as DESIGN defines them.
METHOD_DEFAULTS: dict[str, MethodSettings] = {
    "lass": MethodSettings(num_candidates=16, temperature=1.0, top_k=None, likelihood_weight=1.0),
    "lqvae": MethodSettings(num_candidates=16, temperature=1.0, top_k=None, likelihood_weight=1.0),
    "hybrid": MethodSettings(num_candidates=16, temperature=1.0, top_k=None, likelihood_weight=1.0),
    "mlass-bp": MethodSettings(
        num_candidates=16, temperature=1.0, top_k=None, likelihood_weight=1.0
    ),
    "mlass-pe": MethodSettings(
        num_candidates=16, temperature=1.0, top_k=None, likelihood_weight=1.0
    ),
}


@dataclass(frozen=True)
class Overrides:
    """Settings given on the command line; None keeps the method's default."""

    num_candidates: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    likelihood_weight: float | None = None


def method_settings(method: str, num_sources: int, overrides: Overrides) -> MethodSettings:
    """The settings one (method, N) runs with.

    mlass-bp with 3 or more sources only samples exactly at likelihood weight 1 (the engine
    refuses anything else), so a weight override does not apply to it.
    """
    settings = METHOD_DEFAULTS[method]
    given = {k: v for k, v in asdict(overrides).items() if v is not None}
    if method == "mlass-bp" and num_sources >= 3:
        given.pop("likelihood_weight", None)
    return replace(settings, **given)


@dataclass(frozen=True)
class BenchConfig:
    bundles: Path
    corpus: Path
    out: Path
    chunks: int = 50
    seconds: float = 3.0
    methods: tuple[str, ...] | None = None  # None: every method a bundle serves
    sources: tuple[int, ...] = (2, 3)
    overrides: Overrides = field(default_factory=Overrides)
    threads: int = 2
    seed: int = 0
    device: str = "cpu"
    split: str = "test"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("bundles", "corpus", "out"):
            out[name] = str(out[name])
        return out
