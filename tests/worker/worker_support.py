"""Helpers of the worker tests: a toy bundle built from real model parts, test audio.

The toy bundle has the shipped bundles' interface (sources, methods, codec, prior(source),
likelihood(method, sources), max_sources, separation_defaults(method, n)) over an untrained
tiny codec, random Markov priors and random count tables, so the whole worker path runs in a
second, independently of which trained bundles exist.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latsep.bundle.defaults import defaults_for
from latsep.models.codec import Codec, CodecConfig
from latsep.models.likelihood import ChainLikelihood, CountLikelihood, MarginalLikelihood
from latsep.models.prior.markov import MarkovPrior
from latsep.worker.routing import Engine, LoadedBundle


class ToyBundle:
    methods = ("lass", "mlass-bp", "mlass-pe")
    stem_level_dbfs = None  # the mixture as uploaded, as `Bundle.stem_level_dbfs` may not

    def __init__(
        self,
        sources: tuple[str, ...] = ("bass", "drums"),
        seed: int = 0,
        defaults: dict[str, dict] | None = None,
    ) -> None:
        torch.manual_seed(seed)
        self.sources = sources
        self._defaults = defaults or {}
        self.codec = Codec(CodecConfig.tiny()).eval()
        self.sample_rate = self.codec.sample_rate
        self.hop_length = self.codec.hop_length
        self.num_tokens = k = CodecConfig.tiny().num_tokens
        g = torch.Generator().manual_seed(seed)
        self._priors = {s: MarkovPrior.random(k, generator=g) for s in sources}
        self._counts = torch.randint(0, 5, (k, k, k), generator=g).double()

    def separation_defaults(self, method: str, num_sources: int | None = None) -> dict:
        stored = self._defaults.get(method, {})
        return dict(stored) if num_sources is None else defaults_for(stored, num_sources)

    def prior(self, source: str) -> MarkovPrior:
        return self._priors[source]

    def source_sets(self, method: str) -> tuple[tuple[str, ...], ...]:
        """Like a shipped bundle: every pair, plus every larger set for the mlass methods."""
        top = len(self.sources) if method.startswith("mlass") else 2
        sets = [c for n in range(2, top + 1) for c in itertools.combinations(self.sources, n)]
        return tuple(sets)

    def views(self, method: str, sources: Sequence[str]) -> tuple:
        return ()  # no band views

    def mask_gains(self, method: str, sources: Sequence[str]) -> None:
        return None  # no gains on the masks' power

    def max_sources(self, method: str) -> int:
        return max(len(s) for s in self.source_sets(method))

    def canonical_order(self, method: str, sources: Sequence[str]) -> tuple[str, ...]:
        return tuple(s for s in self.sources if s in sources)

    def likelihood(
        self,
        method: str,
        sources: Sequence[str],
        smoothing: float | None = None,
        backoff: float | None = None,
        latent_sigma: float | None = None,
    ) -> Any:
        n = len(sources)
        if method == "lass":
            return CountLikelihood(self._counts, smoothing=1.0)
        if method == "mlass-bp":
            return ChainLikelihood([self._counts] * (n - 1), smoothing=1.0)
        return MarginalLikelihood(self._counts.sum(1)[None].repeat(n, 1, 1), smoothing=1.0)


def toy_engine(**kwargs) -> Engine:
    return Engine([LoadedBundle("toy", Path("/nonexistent/toy"), ToyBundle(**kwargs))], "cpu")


def mixture(seconds: float = 1.0, rate: int = 22050, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    bass = (0.3 * np.sin(2 * np.pi * 55 * t)).astype(np.float32)
    drums = (0.2 * np.exp(-((t * 4) % 1.0) * 12) * rng.standard_normal(t.size)).astype(np.float32)
    return bass, drums
