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

from latsep.methods import (
    METHOD_TABLE,
    METHODS,
    RESAMPLING_SEARCHES,
    TWO_SOURCE_METHODS,
    SearchSettings,
)

# The stems each source count separates (the corpus's names).
SOURCE_SETS: dict[int, tuple[str, ...]] = {
    2: ("bass", "drums"),
    3: ("bass", "drums", "other"),
}


# Exact sampling (no top-k, untempered, likelihood weight 1) with 16 candidates, the
# pipeline's default: the benchmark measures the methods as DESIGN defines them.
METHOD_DEFAULTS: dict[str, SearchSettings] = {
    method: SearchSettings(num_candidates=16, temperature=1.0, top_k=None, likelihood_weight=1.0)
    for method in METHODS
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
) -> SearchSettings:
    """The settings one (method, N) runs with: overrides, else the bundle's defaults for the
    method (`Bundle.separation_defaults`), else METHOD_DEFAULTS.

    Checked here, at planning time, against what the engine refuses, so that a run fails
    before its first row rather than hours into it:
    - beam search is defined for the two-source methods only: the others sample (their row's
      settings say so; `beam_skipped` names them for the run's log);
    - mlass-bp with 3 or more sources only samples exactly at likelihood weight 1, so no
      other weight applies to it;
    - beam search ranks untempered scores, so beam with temperature ≠ 1 is a ValueError.
    """
    known = {f.name for f in fields(SearchSettings)}
    tuned = {k: v for k, v in (bundle_defaults or {}).items() if k in known}
    given = {k: v for k, v in asdict(overrides).items() if v is not None}
    chosen = {**tuned, **given}
    if method not in TWO_SOURCE_METHODS and chosen.get("search") == "beam":
        chosen["search"] = "sample"
    if METHOD_TABLE[method].chain and num_sources >= 3:
        chosen["likelihood_weight"] = 1.0
    settings = replace(METHOD_DEFAULTS[method], **chosen)
    if settings.search in ("beam", *RESAMPLING_SEARCHES) and settings.temperature != 1.0:
        origin = {"search": _origin("search", given, tuned)}
        origin["temperature"] = _origin("temperature", given, tuned)
        raise ValueError(
            f"{method}: search={settings.search} ({origin['search']}) needs untempered "
            f"scores, but the temperature is {settings.temperature:g} "
            f"({origin['temperature']}); pass "
            "--temperature 1 or --search sample"
        )
    return settings


def beam_skipped(method: str, overrides: Overrides) -> bool:
    """Whether `--search beam` was asked for but `method` samples (it has no beam search)."""
    return overrides.search == "beam" and method not in TWO_SOURCE_METHODS


def _origin(name: str, given: Mapping[str, Any], tuned: Mapping[str, Any]) -> str:
    if name in given:
        return "from the command line"
    if name in tuned:
        return "the bundle's tuned default"
    return "the benchmark's default"


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
    # Held-out conditions: every chunk's stems scaled by level_db (the models must not care
    # at what level a song arrives); backoff: the count tables' β instead of the bundle's;
    # level_norm False: encode the mixture as it comes (the ablation of level normalisation);
    # latent_sigma: σ of lqvae's / hybrid's latent term instead of the bundle's (0: none);
    # views False: leave out the band views a bundle counted (their ablation); hpss_masks
    # False: masks without the prior that drums hold the mix's onsets (hpss.MaskPrior);
    # source_smoothing False: one 5-frame average of every source's power (masks.SMOOTH_FRAMES);
    # mask_gains False: no gains by band on the masks' power (band_gains, the bundle's).
    level_db: float = 0.0
    backoff: float | None = None
    level_norm: bool = True
    latent_sigma: float | None = None
    views: bool = True
    hpss_masks: bool = True
    source_smoothing: bool = True
    mask_gains: bool = True

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("bundles", "corpus", "out"):
            out[name] = str(out[name])
        return out
