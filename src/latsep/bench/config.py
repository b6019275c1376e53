"""What one benchmark run measures: the run's options and the per-method defaults.

A setting comes from the command line if given, else from the bundle's tuned
`separation_defaults` for the method (what the service would use), else from
`METHOD_DEFAULTS` below: the one place to read (and change) the benchmark's own defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
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
    """The sampler's knobs for one method."""

    num_candidates: int
    temperature: float
    top_k: int | None
    likelihood_weight: float
    search: str = "sample"  # "beam" only for the two-source methods


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
    search: str | None = None


def method_settings(
    method: str,
    num_sources: int,
    overrides: Overrides,
    bundle_defaults: Mapping[str, Any] | None = None,
) -> MethodSettings:
    """The settings one (method, N) runs with: overrides, else the bundle's defaults for the
    method (`Bundle.separation_defaults`), else METHOD_DEFAULTS.

    mlass-bp with 3 or more sources only samples exactly at likelihood weight 1 (the engine
    refuses anything else), so no other weight applies to it.
    """
    known = {f.name for f in fields(MethodSettings)}
    chosen = {k: v for k, v in (bundle_defaults or {}).items() if k in known}
    chosen.update({k: v for k, v in asdict(overrides).items() if v is not None})
    if method == "mlass-bp" and num_sources >= 3:
        chosen["likelihood_weight"] = 1.0
    return replace(METHOD_DEFAULTS[method], **chosen)


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
