"""Views of the mixture: more of each step observed than one token of the whole mix.

One mixture token per step carries log2 K bits about N sources' tokens; with three sources
the models cannot tell "other" from bass with it (docs/bench/ablation.md). A *view* is the
mixture as the models see it (gain · mixture / N) through a zero-phase filter, encoded by the
same codec: a band (the low band is mostly bass, the high band mostly drums), optionally of
the mix's harmonic or percussive part only (steady tones against onsets: the kick drum out
of the bass's band, the drums out of the mix). Each view's
table p(v | z_i), counted over training crops like mlass-pe's marginal table, turns the
view's token v_t into a factor on every source's code, f_t,i(z) = p(v_t | z_i = z)^λ; the
views are taken as independent of the mixture token and of each other given the sources'
codes, so the factors multiply into the search's target (`separate(source_factors=...)`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt

from latsep.models.likelihood.marginal import MarginalLikelihood
from latsep.models.separation.chunks import encode_samples
from latsep.models.separation.codec import Codec
from latsep.models.separation.hpss import PARTS, harmonic_percussive

FILTER_KINDS = ("lowpass", "highpass", "bandpass", "full")
MAX_ORDER = 8


@dataclass(frozen=True)
class ViewFilter:
    """What a view keeps of the mix: the harmonic or percussive part (`part`; None: all of
    it), then a Butterworth band run forwards and backwards (zero phase: tokens stay aligned
    with the mixture's). cutoff_hz: none for "full", two for "bandpass", else one."""

    kind: str
    cutoff_hz: tuple[float, ...] = ()
    order: int = 4
    part: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FILTER_KINDS:
            raise ValueError(f"filter kind must be one of {FILTER_KINDS}; got {self.kind!r}")
        edges = {"bandpass": 2, "full": 0}.get(self.kind, 1)
        cutoffs = self.cutoff_hz
        if len(cutoffs) != edges or not all(math.isfinite(c) and c > 0 for c in cutoffs):
            raise ValueError(f"a {self.kind} filter needs {edges} cutoff(s) > 0 Hz; got {cutoffs}")
        if edges == 2 and not cutoffs[0] < cutoffs[1]:
            raise ValueError(f"a bandpass filter's cutoffs must rise; got {cutoffs}")
        if type(self.order) is not int or not 1 <= self.order <= MAX_ORDER:
            raise ValueError(f"filter order must be an integer in [1, {MAX_ORDER}]")
        if self.part is not None and self.part not in PARTS:
            raise ValueError(f"part must be one of {PARTS} or absent; got {self.part!r}")

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> ViewFilter:
        cutoffs = entry.get("cutoff_hz")
        if not isinstance(cutoffs, list) or not all(isinstance(c, int | float) for c in cutoffs):
            raise ValueError(f"cutoff_hz must be a list of frequencies; got {cutoffs!r}")
        part = entry.get("part")
        return cls(
            str(entry.get("filter")),
            tuple(float(c) for c in cutoffs),
            entry.get("order", 4),
            None if part is None else str(part),
        )

    def to_manifest(self) -> dict[str, Any]:
        whole = {"filter": self.kind, "cutoff_hz": list(self.cutoff_hz), "order": self.order}
        return whole if self.part is None else {**whole, "part": self.part}

    def apply(self, audio: np.ndarray, rate: int) -> np.ndarray:
        """audio (..., L) filtered along the last axis, float32."""
        if self.cutoff_hz and max(self.cutoff_hz) >= rate / 2:
            raise ValueError(f"cutoff {max(self.cutoff_hz)} Hz is not below Nyquist ({rate / 2})")
        if self.part is not None:
            audio = harmonic_percussive(audio, self.part)
        if self.kind == "full":
            return np.asarray(audio, np.float32)
        cutoff = self.cutoff_hz[0] if len(self.cutoff_hz) == 1 else list(self.cutoff_hz)
        sos = butter(self.order, cutoff, self.kind, fs=rate, output="sos")
        # sosfiltfilt pads by reflection (its default length); a shorter signal, by less
        short = audio.shape[-1] <= 3 * (2 * len(sos) + 1)
        padding = {"padlen": audio.shape[-1] - 1} if short else {}
        return sosfiltfilt(sos, audio, axis=-1, **padding).astype(np.float32)


@dataclass(frozen=True)
class MixtureView:
    """One view of a bundle for one request: its filter, p(v | z_i) with the sources in the
    request's order, and the exponent λ its factors are raised to."""

    name: str
    filter: ViewFilter
    table: MarginalLikelihood
    weight: float


@dataclass(frozen=True)
class ObservedViews:
    """The views' tokens of one mixture, (V, T); factors are made a window at a time, so a
    long upload holds V·T tokens, not T·N·K floats (1.3 GB for 10 minutes, 3 sources)."""

    views: tuple[MixtureView, ...]
    tokens: torch.Tensor

    def factors(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Π_v p(v_t | z_i = z)^λ_v for the steps start..stop, every source and code,
        (stop - start, N, K) float64."""
        factors: torch.Tensor | None = None
        for view, tokens in zip(self.views, self.tokens, strict=True):
            columns = view.table.columns(tokens[start:stop]).pow(view.weight)  # (t, N, K)
            factors = columns if factors is None else factors * columns
        assert factors is not None
        return factors


def observe_views(
    codec: Codec, views: Sequence[MixtureView], audio: np.ndarray, bf16: bool = False
) -> ObservedViews | None:
    """Each view's tokens of what the codec encodes of the mixture (`audio`, (L,) float32,
    L a multiple of the hop: `observation.models_input`); None without views."""
    if not views:
        return None
    rate = int(codec.sample_rate)
    tokens = [encode_samples(codec, view.filter.apply(audio, rate), bf16) for view in views]
    return ObservedViews(tuple(views), torch.stack(tokens))
