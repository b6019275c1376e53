"""Gains by band on the masks' power: the fit against the Wiener answer, and the manifest form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latsep.models.separation.band_gains import (
    BandGains,
    GainSample,
    band_edges,
    bands_of,
    fit_band_gains,
    spectral_loss,
)
from latsep.models.separation.masks import StftGrid

GRID = StftGrid(sample_rate=8000, n_fft=64, hop_length=16, length=4000)  # 33 bins, 125 Hz
EDGES = (500.0, 1500.0, 2500.0)  # 4 bands
N, F, T = 3, 33, 256


def _gaussian_chunks(count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(variances V (N, F, T), stems S (N, F, T) complex Gaussian with those variances)."""
    g = torch.Generator().manual_seed(seed)
    chunks = []
    for _ in range(count):
        variance = torch.exp(torch.randn(N, F, T, generator=g))  # overlapping, uneven
        noise = torch.complex(torch.randn(N, F, T, generator=g), torch.randn(N, F, T, generator=g))
        chunks.append((variance, noise * (variance / 2).sqrt()))
    return chunks


def _samples(chunks, power_of) -> list[GainSample]:
    return [GainSample(power_of(v), s.sum(0), s) for v, s in chunks]


def test_true_variances_need_no_gains() -> None:
    """P_i the true variance: the masks are the Wiener filters, the MMSE masks of every source
    at every bin, so the fit leaves every gain at 0 dB (up to the sample's noise)."""
    fitted = fit_band_gains(_samples(_gaussian_chunks(8, 0), lambda v: v), GRID, EDGES)
    assert np.abs(fitted.gains_db).max() < 0.2


def test_the_fit_recovers_known_gains_and_lowers_the_loss() -> None:
    """P_i the true variance divided by a known gain per band: the fit finds the gains (centred
    to 0 dB per band: only ratios between sources change the masks) and lowers the loss."""
    true_db = np.array([[6.0, -4.0, 0.0, 3.0], [-3.0, 2.0, 5.0, 0.0], [0.0, 0.0, -6.0, -2.0]])
    known = BandGains(EDGES, true_db)
    linear = known.weights(GRID)  # (N, F, 1)
    samples = _samples(_gaussian_chunks(8, 1), lambda v: v / linear)
    fitted = fit_band_gains(samples, GRID, EDGES)
    centred = true_db - true_db.mean(0, keepdims=True)
    np.testing.assert_allclose(fitted.gains_db, centred, atol=0.25)
    np.testing.assert_allclose(fitted.gains_db.mean(0), 0.0, atol=1e-6)
    none = torch.zeros(N, F)
    log_fitted = torch.log(fitted.weights(GRID)[:, :, 0].double()).float()
    assert spectral_loss(log_fitted, samples) < spectral_loss(none, samples) - 1.0


def test_gains_map_bins_to_bands_and_round_trip_through_the_manifest() -> None:
    gains = BandGains(EDGES, np.arange(12.0).reshape(3, 4))
    bands = bands_of(EDGES, GRID)  # bins at 0, 125, ..., 4000 Hz
    assert bands[0] == 0 and bands[3] == 0 and bands[4] == 1 and bands[12] == 2
    assert bands[20] == 3 and bands[-1] == 3
    weights = gains.weights(GRID)
    assert weights.shape == (3, F, 1)
    np.testing.assert_allclose(weights[1, 4, 0].item(), 10 ** (5 / 10), rtol=1e-6)
    entry = gains.to_manifest(("bass", "drums", "other"), chunks=64)
    assert entry["chunks"] == 64
    back = BandGains.from_manifest(entry, ("other", "bass", "drums"))  # another order
    np.testing.assert_allclose(back.gains_db, gains.gains_db[[2, 0, 1]])
    with pytest.raises(ValueError, match="not"):
        BandGains.from_manifest(entry, ("bass", "drums"))
    with pytest.raises(ValueError, match="bands"):
        BandGains(EDGES, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="ascend"):
        BandGains((500.0, 100.0), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no chunks"):
        fit_band_gains([], GRID)


def test_default_bands_are_thirds_of_an_octave_from_100_hz() -> None:
    edges = band_edges(11025.0)
    assert edges[0] == 100.0 and edges[-1] <= 11025.0 < edges[-1] * 2 ** (1 / 3)
    np.testing.assert_allclose(np.diff(np.log2(edges)), 1 / 3)
