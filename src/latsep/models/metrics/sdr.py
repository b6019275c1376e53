"""Separation and reconstruction metrics: BSSEval v4 SDR (museval) and SI-SDR.

`bss_sdr` is the figure the MUSDB/SiSEC literature reports: museval's BSSEval v4,
per source, median over 1-second frames (frames where the reference is silent are
skipped by museval and come back as NaN). museval's import checks for ffmpeg on PATH.
"""

from __future__ import annotations

import math

import numpy as np


def bss_sdr(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-source median-over-1s-frames SDR in dB; reference, estimate are (N, L).

    Returns (N,) float64; NaN for a source whose every frame is silent.
    """
    import museval  # heavy import, kept local

    reference, estimate = _check(reference, estimate)
    # museval wants (N, L, channels).
    sdr, _isr, _sir, _sar = museval.evaluate(
        reference[:, :, None], estimate[:, :, None], win=sample_rate, hop=sample_rate
    )
    sdr = np.asarray(sdr, dtype=np.float64)  # (N, frames)
    out = np.full(sdr.shape[0], np.nan)
    for i, row in enumerate(sdr):
        finite = row[np.isfinite(row)]
        if finite.size:
            out[i] = float(np.median(finite))
    return out


def si_sdr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Scale-invariant SDR in dB per row of (N, L) inputs (Le Roux et al., 2019)."""
    reference, estimate = _check(reference, estimate)
    reference = reference - reference.mean(axis=1, keepdims=True)
    estimate = estimate - estimate.mean(axis=1, keepdims=True)
    scale = (estimate * reference).sum(1) / ((reference**2).sum(1) + eps)  # (N,)
    target = scale[:, None] * reference
    noise = estimate - target
    return 10 * np.log10(((target**2).sum(1) + eps) / ((noise**2).sum(1) + eps))


def snr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Plain signal-to-error ratio 10·log10(‖x‖² / ‖x − x̂‖²) per row of (N, L), dB."""
    reference, estimate = _check(reference, estimate)
    error = ((reference - estimate) ** 2).sum(1)
    return 10 * np.log10(((reference**2).sum(1) + eps) / (error + eps))


def _check(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.ndim == 1:
        reference = reference[None]
    if estimate.ndim == 1:
        estimate = estimate[None]
    if reference.shape != estimate.shape or reference.ndim != 2:
        raise ValueError(
            f"reference and estimate must both be (N, L); got {reference.shape}, {estimate.shape}"
        )
    return reference, estimate


def db_mean(values: list[float]) -> float:
    """Mean of finite values, NaN if none (for summaries)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan
