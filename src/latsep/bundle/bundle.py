"""A loaded bundle: codec, one prior per source, and likelihoods built from stored counts."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from latsep.bundle.defaults import defaults_for
from latsep.bundle.manifest import (
    DEFAULT_SMOOTHING,
    PAIR_TABLE,
    VIEW_PREFIX,
    BundleError,
    gains_set,
    split_table_name,
)
from latsep.methods import LATENT_METHODS, METHOD_TABLE
from latsep.models.codec import Codec
from latsep.models.likelihood import Backoff
from latsep.models.prior.transformer import TransformerPrior
from latsep.models.separation.band_gains import BandGains
from latsep.models.separation.observation import NOMINAL_STEM_DBFS
from latsep.models.separation.registry import MODELS, Tables, marginal_in_order
from latsep.models.separation.views import MixtureView, ViewFilter

Levels = list[tuple[torch.Tensor, torch.Tensor]]


class Bundle:
    """Everything one worker needs to serve this bundle's methods. Built by load_bundle."""

    def __init__(
        self,
        root: Path,
        manifest: dict[str, Any],
        codec: Codec,
        priors: dict[str, TransformerPrior],
        tables: dict[str, Levels],
        device: torch.device,
    ) -> None:
        self.root = root
        self.manifest = manifest
        self.codec = codec
        self._priors = priors
        self._tables = tables
        self.device = device
        self._cache: dict[tuple[Any, ...], Any] = {}

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.root.name))

    @property
    def codec_kind(self) -> str:
        return str(self.manifest["codec"]["kind"])

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.manifest["sources"])

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.manifest["methods"])

    @property
    def sample_rate(self) -> int:
        return int(self.manifest["sample_rate"])

    @property
    def hop_length(self) -> int:
        return int(self.manifest["hop_length"])

    @property
    def num_tokens(self) -> int:
        return int(self.manifest["num_tokens"])

    @property
    def default_smoothing(self) -> float:
        return float(self.manifest.get("likelihood", {}).get("default_smoothing", 0.0))

    @property
    def stem_level_dbfs(self) -> float:
        """The active-RMS level of one stem the models were trained around (uploads are
        brought to it before encoding); bundles that do not record it used the corpus's."""
        return float(self.manifest["codec"].get("stem_level_dbfs", NOMINAL_STEM_DBFS))

    @property
    def default_backoff(self) -> float:
        """Backoff strength β of the count tables (0: plain additive smoothing)."""
        return float(self.manifest.get("likelihood", {}).get("backoff") or 0.0)

    def separation_defaults(self, method: str, num_sources: int | None = None) -> dict[str, Any]:
        """Tuned defaults for `method` (any of num_candidates, temperature, top_k,
        likelihood_weight, search) with `num_sources` sources; {} when the bundle records
        none. num_sources None: the method's entry as stored, `by_sources` overrides included.
        """
        self._check_method(method)
        stored = self.manifest.get("separation_defaults", {}).get(method, {})
        return dict(stored) if num_sources is None else defaults_for(stored, num_sources)

    @property
    def raw_tables(self) -> dict[str, Levels]:
        """The stored raw counts: table name → levels of (indices (3, nnz), counts (nnz,))."""
        return self._tables

    def prior(self, source: str) -> TransformerPrior:
        if source not in self._priors:
            raise BundleError(f"bundle {self.name} has no prior for {source!r}; has {self.sources}")
        return self._priors[source]

    def source_sets(self, method: str) -> tuple[tuple[str, ...], ...]:
        """The ordered source tuples this bundle can serve `method` for: every pair for a
        method that needs no table, else the pairs with a pair table, plus (for methods of
        three or more sources) the sets with a table of the method's kind."""
        self._check_method(method)
        facts = METHOD_TABLE[method]
        if facts.tableless:
            return tuple(itertools.combinations(self.sources, 2))
        sets = [s for kind, s in self._table_keys() if kind == PAIR_TABLE]
        if facts.multi_table is not None:
            sets += [s for kind, s in self._table_keys() if kind == facts.multi_table]
        return tuple(sets)

    def max_sources(self, method: str) -> int:
        return max(len(s) for s in self.source_sets(method))

    def canonical_order(self, method: str, sources: Sequence[str]) -> tuple[str, ...]:
        """The stored order of this set of sources (feed priors in this order if you can)."""
        wanted = set(sources)
        for stored in self.source_sets(method):
            if set(stored) == wanted and len(stored) == len(sources):
                return stored
        raise BundleError(
            f"bundle {self.name} cannot serve {method} for sources {tuple(sources)}; it serves "
            f"{[list(s) for s in self.source_sets(method)]}"
        )

    def likelihood(
        self,
        method: str,
        sources: Sequence[str],
        smoothing: float | None = None,
        backoff: float | None = None,
        latent_sigma: float | None = None,
    ) -> Any:
        """The engine's likelihood object for `method` with sources in the given order.

        smoothing / backoff (β; 0 turns it off) override the manifest's. Backoff applies to
        the joint count tables (lass, hybrid, every level of mlass-bp's chain): the
        "product" form for a pair, the "mixture" form for a chain of three or more sources,
        whose forward messages would cost K³ per candidate in the product form.
        latent_sigma overrides the manifest's `likelihood.latent_sigma[method]` (lqvae, hybrid):
        > 0, also score the mixture's continuous latent with this σ; 0, its token only (a
        method without an entry: its token only).
        """
        sources = tuple(sources)
        stored = self.canonical_order(method, sources)
        s = self.default_smoothing if smoothing is None else float(smoothing)
        beta = self.default_backoff if backoff is None else float(backoff)
        if latent_sigma is None:
            latent_sigma = self.manifest.get("likelihood", {}).get("latent_sigma", {}).get(method)
        latent = float(latent_sigma) if latent_sigma and method in LATENT_METHODS else None
        key = (method, sources, s, beta, latent)
        if key not in self._cache:
            self._cache[key] = self._build(method, sources, stored, s, beta, latent)
        return self._cache[key]

    def _build(
        self,
        method: str,
        sources: tuple[str, ...],
        stored: tuple[str, ...],
        smoothing: float,
        beta: float,
        latent_sigma: float | None,
    ) -> Any:
        backoff = None
        if beta > 0:
            backoff = Backoff(beta, "product" if len(sources) == 2 else "mixture")
        sigma = self.manifest.get("likelihood", {}).get("gaussian_sigma")
        tables = Tables(
            sources=sources,
            stored=stored,
            tables=self._tables,
            num_tokens=self.num_tokens,
            smoothing=smoothing,
            backoff=backoff,
            codebook=self.codec.codebook.detach().cpu(),
            gaussian_sigma=None if sigma is None else float(sigma),
            latent_sigma=latent_sigma,
            bundle=self.name,
        )
        try:
            return MODELS[method].build(tables)
        except ValueError as exc:
            raise BundleError(str(exc)) from exc

    def views(self, method: str, sources: Sequence[str]) -> tuple[MixtureView, ...]:
        """The band views this bundle counted for exactly this set of sources that `method`
        uses (a view's weight is one λ for every method or {method: λ}), their tables in the
        given order (none: ()). A view's table needs smoothing > 0: a factor of 0 would
        rule a code out, so a bundle without smoothing gets the default for them."""
        sources = tuple(sources)
        key = ("views", method, sources)
        if key in self._cache:
            return self._cache[key]
        smoothing = self.default_smoothing or DEFAULT_SMOOTHING
        found = []
        for name, entry in self.manifest.get("likelihood", {}).get("views", {}).items():
            weight = entry.get("weight", 1.0)
            if isinstance(weight, dict):
                if method not in weight:
                    continue
                weight = weight[method]
            for kind, stored in self._table_keys():
                if kind != VIEW_PREFIX + name or sorted(stored) != sorted(sources):
                    continue
                indices, counts = self._tables[kind + ":" + "+".join(stored)][0]
                table = marginal_in_order(
                    indices, counts, sources, stored, self.num_tokens, smoothing
                )
                band = ViewFilter.from_manifest(entry)
                found.append(MixtureView(name, band, table, float(weight)))
        self._cache[key] = tuple(found)
        return self._cache[key]

    def mask_gains(self, method: str, sources: Sequence[str]) -> BandGains | None:
        """The gains by band on the masks' power fitted for `method` on this set of
        sources (`latsep bundle fit-mask-gains`), in the given order; None when none were."""
        for name, entry in self.manifest.get("mask_gains", {}).items():
            if gains_set(name) == (method, frozenset(sources)):
                return BandGains.from_manifest(entry, sources)
        return None

    def _table_keys(self) -> list[tuple[str, tuple[str, ...]]]:
        return [split_table_name(name) for name in self.manifest["tables"]]

    def _check_method(self, method: str) -> None:
        if method not in self.methods:
            raise BundleError(
                f"bundle {self.name} ({self.codec_kind} codec) does not serve {method!r}; it "
                f"serves {list(self.methods)}"
            )

    def __repr__(self) -> str:
        return (
            f"Bundle({self.name!r}, kind={self.codec_kind}, sources={self.sources}, "
            f"methods={self.methods}, K={self.num_tokens}, hop={self.hop_length})"
        )
