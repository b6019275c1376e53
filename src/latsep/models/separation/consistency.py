"""Mixture consistency: ranking candidates, Wiener-style stems, and SI-SDR for the oracle."""

from __future__ import annotations

import numpy as np
import torch

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
    mixture: np.ndarray, estimates: np.ndarray, n_fft: int = 1024, hop_length: int = 256
) -> np.ndarray:
    """Stems that sum to the mixture: soft masks from the estimates applied to the mixture.

    M_i = P_i / Σ_j P_j on an STFT, with P_i = |X̂_i|² (uniform 1/N where every estimate is
    silent); stems = iSTFT(M_i · Y). The masks sum to 1 and the iSTFT is linear, so
    Σ_i stems = y up to float error, and the stems keep the mixture's phase and detail.
    estimates (N, L): one candidate; (C, N, L): several, whose power is summed,
    P_i = Σ_c |X̂_ci|² (the same masks as the mean over candidates) — masks from the
    candidates' consensus, which no single candidate's errors dominate.
    mixture (L,) -> (N, L) float32.
    """
    candidates = np.asarray(estimates, dtype=np.float64)
    if candidates.ndim == 2:
        candidates = candidates[None]
    _, n, length = candidates.shape
    if length < n_fft:  # short clips: the largest power-of-two frame that fits
        n_fft = max(4, 1 << (max(length, 4).bit_length() - 1))
        hop_length = max(1, n_fft // 4)
    window = torch.hann_window(n_fft, dtype=torch.float64)

    def stft(x: np.ndarray) -> torch.Tensor:
        return torch.stft(
            torch.from_numpy(x),
            n_fft,
            hop_length,
            window=window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )

    mixture_spec = stft(np.asarray(mixture, dtype=np.float64))  # (F, frames)
    # Accumulated one stem of one candidate at a time: a long clip with many candidates
    # never holds more than one extra spectrogram.
    power = torch.zeros((n, *mixture_spec.shape), dtype=torch.float64)  # (N, F, frames)
    for candidate in candidates:
        for i, stem in enumerate(candidate):
            power[i] += stft(stem).abs() ** 2
    total = power.sum(0, keepdim=True)
    masks = torch.where(total > _EPS, power / total.clamp(min=_EPS), 1.0 / n)
    stems = torch.istft(
        masks * mixture_spec[None], n_fft, hop_length, window=window, center=True, length=length
    )
    return stems.numpy().astype(np.float32)
