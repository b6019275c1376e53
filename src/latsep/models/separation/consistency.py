"""Mixture consistency: ranking candidates, Wiener-style stems, and SI-SDR for the oracle."""

from __future__ import annotations

import numpy as np

from latsep.models.audio import SAMPLE_RATE
from latsep.models.separation.masks import apply_masks, estimate_masks

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

    M_i = P_i / Σ_j P_j on an STFT (`estimate_masks`: P_i from one candidate's power, or
    from several candidates' consensus; uniform 1/N where every estimate is silent);
    stems = iSTFT(M_i · Y). The masks sum to 1 and the iSTFT is linear, so Σ_i stems = y up
    to float error, and the stems keep the mixture's phase and detail.
    estimates (N, L): one candidate; (C, N, L): several. mixture (L,) -> (N, L) float32.
    """
    # Masks and mixture share one rate, so the grid's row for the band above the models'
    # Nyquist is never read: any rate gives the same stems.
    rate = SAMPLE_RATE
    grid = estimate_masks(np.asarray(estimates, np.float32), rate, n_fft, hop_length)
    return apply_masks(grid, np.asarray(mixture, np.float32)[None], rate)[:, 0]
