"""Metrics against closed-form answers."""

from __future__ import annotations

import numpy as np
import pytest

from latsep.models.metrics import bss_sdr, si_sdr, snr


def test_si_sdr_closed_form() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8000))
    noise = rng.standard_normal((2, 8000))
    noise -= noise.mean(1, keepdims=True)
    x -= x.mean(1, keepdims=True)
    # Make the noise orthogonal to x, so SI-SDR = 10 log10(‖x‖² / ‖n‖²) exactly.
    noise -= ((noise * x).sum(1) / (x * x).sum(1))[:, None] * x
    noise *= 0.1
    expected = 10 * np.log10((x**2).sum(1) / (noise**2).sum(1))
    assert np.allclose(si_sdr(x, 3.0 * (x + noise)), expected, atol=1e-6)  # scale-free


def test_snr_closed_form() -> None:
    x = np.ones((1, 100))
    assert np.allclose(snr(x, 0.9 * x), 20.0, atol=1e-6)


def test_bss_sdr_orders_estimates_and_is_high_for_perfect() -> None:
    rng = np.random.default_rng(1)
    sr = 8000
    ref = rng.standard_normal((2, 3 * sr))
    good = ref + 0.01 * rng.standard_normal(ref.shape)
    bad = ref + 0.5 * rng.standard_normal(ref.shape)
    sdr_good = bss_sdr(ref, good, sr)
    sdr_bad = bss_sdr(ref, bad, sr)
    assert sdr_good.shape == (2,)
    assert np.all(sdr_good > 30) and np.all(sdr_good > sdr_bad + 20)
    # Independent noise at −6 dB: SDR ≈ 6 dB.
    assert np.all(np.abs(sdr_bad - 6.0) < 1.0)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        si_sdr(np.zeros((2, 10)), np.zeros((2, 11)))
