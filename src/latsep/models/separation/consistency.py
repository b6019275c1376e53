"""Mixture consistency: ranking candidates, Wiener-style stems, and SI-SDR for the oracle."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from latsep.audio import SAMPLE_RATE
from latsep.models.separation.band_gains import BandGains
from latsep.models.separation.hpss import MASK_EXPONENT, MaskPrior
from latsep.models.separation.masks import (
    SMOOTH_FRAMES,
    MaskGrid,
    Smoothing,
    StftGrid,
    apply_masks,
    consensus_power,
    masks_from_power,
)

_EPS = 1e-12


def mixture_error(mixture: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """‖y - Σ_i x̂_i‖² / ‖y‖² per candidate; mixture (L,), estimates (C, N, L) -> (C,)."""
    residual = mixture[None, :] - estimates.sum(1)  # (C, L)
    return (residual**2).sum(1) / ((mixture**2).sum() + _EPS)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Scale-invariant SDR in dB over the last axis (broadcasting)."""
    reference = reference - reference.mean(-1, keepdims=True)
    estimate = estimate - estimate.mean(-1, keepdims=True)
    scale = (estimate * reference).sum(-1, keepdims=True) / (
        (reference**2).sum(-1, keepdims=True) + _EPS
    )
    target = scale * reference
    noise = estimate - target
    return 10 * np.log10(((target**2).sum(-1) + _EPS) / ((noise**2).sum(-1) + _EPS))


def wiener_stems(
    mixture: np.ndarray,
    estimates: np.ndarray,
    n_fft: int = 1024,
    hop_length: int = 256,
    *,
    percussive: Sequence[bool] = (),
    mask_prior: float = MASK_EXPONENT,
    smoothing: Smoothing = SMOOTH_FRAMES,
    mask_gains: BandGains | None = None,
) -> np.ndarray:
    """Stems that sum to the mixture: soft masks from the estimates applied to the mixture.

    M_i = P_i / Σ_j P_j on an STFT (`mask_power`: P_i from one candidate's power, or from
    several candidates' consensus; uniform 1/N where every estimate is silent);
    stems = iSTFT(M_i · Y). The masks sum to 1 and the iSTFT is linear, so Σ_i stems = y up
    to float error, and the stems keep the mixture's phase and detail.
    estimates (N, L): one candidate; (C, N, L): several. mixture (L,) -> (N, L) float32.
    percussive, mask_prior, smoothing, mask_gains: the masks' prior, the power's time
    average and its gains by band, as the service's (`separate_waveform`).
    """
    power, stft = mask_power(
        mixture, estimates, n_fft, hop_length, percussive, mask_prior, smoothing
    )
    gains = None if mask_gains is None else mask_gains.weights(stft)
    grid = MaskGrid(masks_from_power(power, stft, gains), stft)
    return apply_masks(grid, np.asarray(mixture, np.float32)[None], stft.sample_rate)[:, 0]


def mask_power(
    mixture: np.ndarray,
    estimates: np.ndarray,
    n_fft: int = 1024,
    hop_length: int = 256,
    percussive: Sequence[bool] = (),
    mask_prior: float = MASK_EXPONENT,
    smoothing: Smoothing = SMOOTH_FRAMES,
) -> tuple[torch.Tensor, StftGrid]:
    """Each source's power (N, F, T) as the masks weigh it before any gains by band — the
    estimates' (consensus) power averaged over `smoothing`, times the masks' prior — and its
    grid, at the models' rate (the gains' bands are in Hz at that rate; `load_bundle` holds
    every bundle to it). What `latsep bundle fit-mask-gains` fits the gains on."""
    candidates = np.asarray(estimates, np.float32)
    power, stft = consensus_power(candidates, SAMPLE_RATE, n_fft, hop_length, smoothing)
    prior = MaskPrior.for_sources(mixture, stft, percussive, mask_prior)
    if prior is not None:
        power = power * prior.weights(0, stft.frames)
    return power, stft


class SiSdrSums:
    """SI-SDR (`si_sdr`) of C candidates' sources against references (N, L), from sums over
    blocks of samples: `add` each candidate's block, then `values` (C, N).

    The sums are of the error d = x̂ − s (float64): Σd, Σd² and Σd·s̄, with s̄ the zero-mean
    references. The estimate's zero-mean part is s̄ + d̄ (d̄ = d − mean(d)), so
    α = (‖s̄‖² + <d̄, s̄>) / ‖s̄‖² and x̂ − mean − α s̄ = (1 − α) s̄ + d̄: no difference of
    large sums, and an exact estimate (d = 0) scores exactly what `si_sdr` gives it.
    """

    def __init__(self, references: np.ndarray, num_candidates: int) -> None:
        self.refs = np.asarray(references, dtype=np.float64)  # (N, L)
        self.mean = self.refs.mean(-1, keepdims=True)  # (N, 1)
        centred = self.refs - self.mean
        self.energy = (centred**2).sum(-1)  # (N,) ‖s̄‖²
        self.total = centred.sum(-1)  # (N,) Σ s̄, ≈ 0
        shape = (num_candidates, self.refs.shape[0])
        self.sum_d, self.sum_dd, self.sum_ds = np.zeros(shape), np.zeros(shape), np.zeros(shape)

    def add(self, candidate: int, start: int, estimate: np.ndarray) -> None:
        """estimate (N, S): candidate `candidate`'s sources over samples [start, start + S)."""
        refs = self.refs[:, start : start + estimate.shape[1]]
        error = estimate.astype(np.float64) - refs
        self.sum_d[candidate] += error.sum(-1)
        self.sum_dd[candidate] += (error**2).sum(-1)
        self.sum_ds[candidate] += (error * (refs - self.mean)).sum(-1)

    def values(self) -> np.ndarray:
        """(C, N) SI-SDR in dB."""
        length = self.refs.shape[1]
        mean_d = self.sum_d / length
        d_s = self.sum_ds - mean_d * self.total  # <d̄, s̄>
        d_d = np.maximum(self.sum_dd - self.sum_d * mean_d, 0.0)  # ‖d̄‖²
        denominator = self.energy + _EPS
        scale = (self.energy + d_s) / denominator  # α
        rest = (_EPS - d_s) / denominator  # 1 − α
        target = scale**2 * self.energy
        noise = np.maximum(rest**2 * self.energy + 2 * rest * d_s + d_d, 0.0)
        return 10 * np.log10((target + _EPS) / (noise + _EPS))
