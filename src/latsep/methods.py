"""The separation methods and the rules their options obey, written once.

Torch-free, so the API can check a request before anything is queued; the bundle format
checks manifests, the benchmark plans its runs and the engine refuses what it cannot sample
with the same rules. Adding a method: its `Method` here, its likelihood in
`models/likelihood`, and its entry in `latsep.models.registry` (how a bundle builds it and
which sampler draws from it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Method:
    """What the rest of the service needs to know about one method, without torch."""

    name: str
    about: str  # one sentence for people choosing it (the web page shows it)
    codec: str  # the codec kind whose bundles serve it: "plain" or "lq"
    # One joint likelihood L(y | a, b) over a pair: two sources only, and beam search (a
    # beam over the joint pair's paths).
    pair: bool
    # The count table it reads beyond the pair tables for three or more sources (a bundle
    # table kind: "chain", "marginal"), None for pair methods.
    multi_table: str | None = None
    # Needs no count table at all (the codebook is its likelihood).
    tableless: bool = False
    # Samples exactly only at likelihood weight 1 with 3+ sources (a chain of partial
    # mixtures: L^w has no chain factorisation).
    chain: bool = False
    # Can also score the mixture's continuous latent (an LQ codec's), given a σ for it.
    latent: bool = False


# Every method, in the order lists show them: the one place a method is named (its
# likelihood and how a bundle builds it: latsep.models.registry).
METHOD_TABLE: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "lass",
            "LASS: plain VQ-VAE tokens, a transformer prior per source and a count table that "
            "ties them to the mix. Two sources.",
            codec="plain",
            pair=True,
        ),
        Method(
            "lqvae",
            "LQ-VAE: a codec trained so that codes add up, with a Gaussian likelihood on the "
            "mix's continuous latent. Two sources.",
            codec="lq",
            pair=True,
            tableless=True,
            latent=True,
        ),
        Method(
            "hybrid",
            "The LQ-VAE codec with LASS's count table. Two sources.",
            codec="lq",
            pair=True,
            latent=True,
        ),
        Method(
            "mlass-bp",
            "MLASS with exact belief propagation: sources drawn jointly, consistent with the "
            "mix. Two or more sources.",
            codec="plain",
            pair=False,
            multi_table="chain",
            chain=True,
        ),
        Method(
            "mlass-pe",
            "MLASS probabilistic extractor: each source drawn against the mix on its own; the "
            "best and fastest in our benchmark. Two or more sources.",
            codec="plain",
            pair=False,
            multi_table="marginal",
        ),
    )
}
METHODS = tuple(METHOD_TABLE)
TWO_SOURCE_METHODS = tuple(m for m in METHODS if METHOD_TABLE[m].pair)
# Which methods a bundle's codec kind serves (given the tables it carries).
METHODS_BY_CODEC: dict[str, tuple[str, ...]] = {
    kind: tuple(m for m in METHODS if METHOD_TABLE[m].codec == kind) for kind in ("plain", "lq")
}
# Methods whose likelihood can also score the mixture's continuous latent, when their
# bundle records a σ for it (`likelihood.latent_sigma`).
LATENT_METHODS = tuple(m for m in METHODS if METHOD_TABLE[m].latent)
# What a request that names no method gets: three sources need an MLASS method, and
# mlass-pe is the faster and better of the two there (docs/bench).
DEFAULT_METHOD = "mlass-pe"
# sample: independent per-step draws; beam: two-source MAP search; smc: the same draws with
# the candidates resampled by their predictive weight (sequential Monte Carlo, engine.py);
# mixed: half the candidates resampled as in smc, the other half independent as in sample
SEARCHES = ("sample", "beam", "smc", "mixed")
# searches that weigh candidates by the untempered, untruncated posterior
RESAMPLING_SEARCHES = ("smc", "mixed")


@dataclass(frozen=True)
class SearchSettings:
    """The token search's knobs for one separation (the engine's keyword arguments)."""

    num_candidates: int
    temperature: float = 1.0
    top_k: int | None = None
    likelihood_weight: float = 1.0
    search: str = "sample"  # "beam" only for the two-source methods; smc/mixed untempered

    def keywords(self) -> dict[str, Any]:
        """These knobs as keyword arguments of `separate` and `separate_waveform`."""
        return asdict(self)


def check_latent_sigmas(values: Any, served: Iterable[str]) -> None:
    """A bundle's {method: σ} of latent terms (manifest `likelihood.latent_sigma`, or a
    training config's `[bundles.latent_sigma]`): methods of LATENT_METHODS among `served`,
    each σ finite and > 0. ValueError otherwise."""
    if not isinstance(values, Mapping):
        raise ValueError(f"latent_sigma must map methods to σ; got {values!r}")
    served = list(served)
    for method, sigma in values.items():
        if method not in LATENT_METHODS or method not in served:
            raise ValueError(
                f"latent_sigma names {method!r}: no latent term for {method!r} here (methods "
                f"with one: {[m for m in LATENT_METHODS if m in served]})"
            )
        if (
            isinstance(sigma, bool)
            or not isinstance(sigma, int | float)
            or not 0 < sigma < math.inf
        ):
            raise ValueError(f"latent_sigma[{method}] must be > 0 and finite; got {sigma!r}")


def option_problem(
    method: str,
    num_sources: int | None = None,
    *,
    search: str | None = None,
    temperature: float | None = None,
    likelihood_weight: float | None = None,
    top_k: int | None = None,
) -> str | None:
    """Why `method` cannot run with these options, or None when it can (None: not given).

    - two-source methods separate exactly two sources;
    - beam search exists for the two-source methods only, and ranks untempered scores, so
      it needs temperature 1; smc and mixed weigh candidates by the untempered, untruncated
      posterior, so they need temperature 1 and no top-k;
    - the likelihood weight is a finite number > 0, and mlass-bp with three sources or more
      samples its chain of partial mixtures exactly only at weight 1 (L^w has no chain
      factorisation).
    """
    if method not in METHODS:
        return f"unknown method {method!r}; methods are {', '.join(METHODS)}"
    if method in TWO_SOURCE_METHODS and num_sources not in (None, 2):
        return f"{method} separates two sources; got {num_sources}"
    if search is not None and search not in SEARCHES:
        return f"search must be one of {', '.join(SEARCHES)}; got {search!r}"
    if search == "beam":
        if method not in TWO_SOURCE_METHODS:
            return f"search=beam serves {', '.join(TWO_SOURCE_METHODS)}; not {method}"
        if temperature not in (None, 1.0):
            return (
                "search=beam ranks paths by their untempered scores: temperature must be 1 "
                f"(got {temperature}); use search=sample for tempered draws"
            )
    if search in RESAMPLING_SEARCHES and temperature not in (None, 1.0):
        return (
            f"search={search} weighs candidates by the untempered posterior: temperature must "
            f"be 1 (got {temperature})"
        )
    if search in RESAMPLING_SEARCHES and top_k is not None:
        return (
            f"search={search} weighs candidates by the untruncated posterior: no top_k "
            f"(got {top_k})"
        )
    weight = likelihood_weight
    if weight is not None and not (math.isfinite(weight) and weight > 0):
        return f"likelihood_weight must be a finite number > 0; got {weight}"
    if METHOD_TABLE[method].chain and (num_sources or 0) >= 3 and weight not in (None, 1.0):
        return (
            f"likelihood_weight must be 1 for {method} with {num_sources} sources (got "
            f"{weight}): the chain of partial mixtures is sampled exactly only for w = 1"
        )
    return None
