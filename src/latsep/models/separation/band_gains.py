"""Per-source gains by frequency band on the masks' power, fitted where the stems are known.

The candidates' consensus power is biased in a way the masks cannot see: with three
sources the decoded bass is dull, so above 200 Hz its harmonics go to "other" (on valid,
mlass-bp's masks gave bass 18 % of the 300–400 Hz energy it holds 39 % of, 6 % of the
400–800 Hz energy it holds 19 % of). A gain per source and band, g_i(b), multiplied into
P_i before the masks M_i = g_i P_i / Σ_j g_j P_j, undoes such a bias; only the ratios
between sources matter, so the gains are stored with a mean of 0 dB per band. The bias is
the decoded candidates', so a single candidate's masks (consistency "wiener") get them too.

They are fitted on chunks whose stems are known, separated exactly as the service separates
(`latsep bundle fit-mask-gains`, on the valid split: the models fit their train split, whose
candidates err less than on unseen music, and gains fitted there did not carry over): the
gains that minimise Σ_chunks Σ_i log(‖M_i Y − S_i‖² / ‖S_i‖²) on the masks' STFT — the sum
over sources of minus each one's spectral SDR (`fit_band_gains`). Where the power is exactly
right (P_i the true variance of Gaussian sources) the masks are the Wiener filters and the
fitted gains are 0 dB; a test checks that and the recovery of known gains. Bands are a
third of an octave from 100 Hz up, one band below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latsep.models.separation.masks import StftGrid

LOWEST_EDGE_HZ = 100.0  # one band below: a third of an octave there is under two bins
BANDS_PER_OCTAVE = 3
_EPS = 1e-20


def band_edges(
    top_hz: float, lowest: float = LOWEST_EDGE_HZ, per_octave: int = BANDS_PER_OCTAVE
) -> tuple[float, ...]:
    """Inner band edges lowest · 2^(k / per_octave) up to top_hz (bands are [0, e_0),
    [e_0, e_1), ..., [e_last, ∞))."""
    count = math.floor(per_octave * math.log2(top_hz / lowest)) + 1
    return tuple(lowest * 2.0 ** (k / per_octave) for k in range(count))


def bands_of(edges_hz: Sequence[float], stft: StftGrid) -> np.ndarray:
    """(F,) the band of each bin of the grid."""
    freqs = np.arange(stft.n_fft // 2 + 1) * (stft.sample_rate / stft.n_fft)
    return np.searchsorted(np.asarray(edges_hz, np.float64), freqs, side="right")


@dataclass(frozen=True)
class BandGains:
    """gains_db (N, B) for B = len(edges_hz) + 1 bands, in the sources' order."""

    edges_hz: tuple[float, ...]
    gains_db: np.ndarray

    def __post_init__(self) -> None:
        gains = np.asarray(self.gains_db, np.float64)
        if gains.ndim != 2 or gains.shape[1] != len(self.edges_hz) + 1:
            raise ValueError(
                f"gains_db must be (sources, {len(self.edges_hz) + 1} bands); got {gains.shape}"
            )
        if list(self.edges_hz) != sorted(self.edges_hz) or not np.all(np.isfinite(gains)):
            raise ValueError("band edges must ascend and gains be finite")
        object.__setattr__(self, "edges_hz", tuple(float(e) for e in self.edges_hz))
        object.__setattr__(self, "gains_db", gains)

    def weights(self, stft: StftGrid) -> torch.Tensor:
        """(N, F, 1) float32 power gains for the grid's bins, to multiply (N, F, T) power."""
        linear = 10.0 ** (self.gains_db / 10.0)
        return torch.from_numpy(linear[:, bands_of(self.edges_hz, stft), None].astype(np.float32))

    def to_manifest(self, sources: Sequence[str], **provenance: Any) -> dict[str, Any]:
        rows = zip(sources, self.gains_db, strict=True)
        return {
            "edges_hz": [round(e, 3) for e in self.edges_hz],
            "gains_db": {s: [round(float(g), 3) for g in row] for s, row in rows},
            **provenance,
        }

    @classmethod
    def from_manifest(cls, entry: dict[str, Any], sources: Sequence[str]) -> BandGains:
        """The entry's gains in the order of `sources` (which must be the entry's set)."""
        stored = entry["gains_db"]
        if sorted(stored) != sorted(sources):
            raise ValueError(f"mask gains are for {sorted(stored)}, not {sorted(sources)}")
        edges = tuple(float(e) for e in entry["edges_hz"])
        return cls(edges, np.array([stored[s] for s in sources], np.float64))


@dataclass(frozen=True)
class GainSample:
    """One chunk for the fit, on the masks' grid: the service's power P (N, F, T) (prior and
    time average included), the mixture's STFT Y (F, T) and the true stems' S (N, F, T)."""

    power: torch.Tensor
    mixture: torch.Tensor
    stems: torch.Tensor


def spectral_loss(log_gains: torch.Tensor, samples: Sequence[GainSample]) -> torch.Tensor:
    """Σ_chunks Σ_i log(‖M_i Y − S_i‖² / ‖S_i‖²) with M = masks of P · exp(log_gains) (N, F)."""
    total = log_gains.new_zeros(())
    for sample in samples:
        weighted = sample.power * log_gains.exp()[:, :, None]
        masks = weighted / weighted.sum(0, keepdim=True).clamp(min=_EPS)
        error = (masks * sample.mixture[None] - sample.stems).abs().square().sum((1, 2))
        energy = sample.stems.abs().square().sum((1, 2))
        total = total + torch.log((error + _EPS) / (energy + _EPS)).sum()
    return total


def fit_band_gains(
    samples: Sequence[GainSample],
    stft: StftGrid,
    edges_hz: Sequence[float] | None = None,
    *,
    steps: int = 200,
    learning_rate: float = 0.05,
) -> BandGains:
    """The band gains minimising `spectral_loss` over `samples` (Adam from 0 dB, full batch,
    deterministic), centred to a mean of 0 dB per band."""
    if not samples:
        raise ValueError("no chunks to fit the mask gains on")
    edges = tuple(edges_hz) if edges_hz is not None else band_edges(stft.sample_rate / 2)
    n = samples[0].power.shape[0]
    bands = torch.from_numpy(bands_of(edges, stft))  # (F,)
    params = torch.zeros(n, len(edges) + 1, dtype=torch.float32, requires_grad=True)
    optimiser = torch.optim.Adam([params], lr=learning_rate)
    for _ in range(steps):
        optimiser.zero_grad()
        spectral_loss(params[:, bands], samples).backward()
        optimiser.step()
    with torch.no_grad():
        centred = params - params.mean(0, keepdim=True)
    return BandGains(edges, centred.double().numpy() * (10.0 / math.log(10.0)))
