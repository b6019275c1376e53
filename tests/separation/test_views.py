"""Views of the mixture: zero-phase filters, harmonic and percussive parts, their factors,
and the factors reaching the search window by window (the search itself:
test_source_factors.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sep_bruteforce import markov_log_prob
from test_hpss import tone_and_clicks
from test_waveform_pipeline import LatticeCodec, lattice_problem

from latsep.models.likelihood import MarginalLikelihood
from latsep.models.separation import pipeline
from latsep.models.separation.chunks import encode_samples
from latsep.models.separation.hpss import harmonic_percussive
from latsep.models.separation.pipeline import separate_waveform
from latsep.models.separation.views import MixtureView, ViewFilter, observe_views

RATE = 22050


def _tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE)


@pytest.mark.parametrize(
    ("band", "kept", "removed"),
    [
        (ViewFilter("lowpass", (200.0,)), 50.0, 4000.0),
        (ViewFilter("highpass", (3000.0,)), 6000.0, 100.0),
        (ViewFilter("bandpass", (200.0, 3000.0)), 1000.0, 8000.0),
    ],
)
def test_a_band_keeps_its_tone_in_phase_and_removes_the_other(band, kept, removed):
    out = band.apply((_tone(kept) + _tone(removed)).astype(np.float32), RATE)
    inner = slice(2000, -2000)  # away from the edges' padding
    # zero phase: the kept tone comes back where it was, not delayed
    np.testing.assert_allclose(out[inner], _tone(kept)[inner], atol=0.01)
    assert out.dtype == np.float32


def test_a_signal_shorter_than_the_padding_is_still_filtered():
    out = ViewFilter("lowpass", (200.0,)).apply(np.ones(5, np.float32), RATE)
    assert out.shape == (5,) and np.isfinite(out).all()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("notch", (100.0,)), "kind"),
        (("lowpass", (0.0,)), "cutoff"),
        (("lowpass", (100.0, 200.0)), "cutoff"),
        (("bandpass", (300.0, 200.0)), "rise"),
        (("lowpass", (100.0,), 0), "order"),
        (("lowpass", (100.0,), 2.5), "order"),
        (("full", (100.0,)), "0 cutoff"),
        (("lowpass", (100.0,), 4, "steady"), "part"),
    ],
)
def test_bad_filters_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        ViewFilter(*arguments)


def test_a_cutoff_above_nyquist_is_refused_when_applied():
    with pytest.raises(ValueError, match="Nyquist"):
        ViewFilter("lowpass", (12000.0,)).apply(np.zeros(100, np.float32), RATE)


def test_a_part_is_taken_before_the_band():
    tone, clicks = tone_and_clicks()
    view = ViewFilter("lowpass", (2000.0,), part="harmonic")
    expected = ViewFilter("lowpass", (2000.0,)).apply(
        harmonic_percussive(tone + clicks, "harmonic"), RATE
    )
    np.testing.assert_allclose(view.apply(tone + clicks, RATE), expected, atol=1e-6)
    full = ViewFilter("full", part="percussive").apply(tone + clicks, RATE)
    np.testing.assert_allclose(full, harmonic_percussive(tone + clicks, "percussive"))
    assert ViewFilter("full").apply(tone, RATE).dtype == np.float32


def test_manifest_round_trip():
    for band in (
        ViewFilter("bandpass", (200.0, 3000.0), order=2),
        ViewFilter("full", part="percussive"),
        ViewFilter("lowpass", (200.0,), part="harmonic"),
    ):
        assert ViewFilter.from_manifest(band.to_manifest()) == band
    with pytest.raises(ValueError, match="cutoff_hz"):
        ViewFilter.from_manifest({"filter": "lowpass", "cutoff_hz": "200"})


def _views(k: int, n: int, seed: int) -> list[MixtureView]:
    g = torch.Generator().manual_seed(seed)
    tables = [MarginalLikelihood(torch.rand(n, k, k, generator=g) * 5, 0.1) for _ in range(2)]
    return [
        MixtureView("low", ViewFilter("lowpass", (3000.0,)), tables[0], 0.7),
        MixtureView("high", ViewFilter("highpass", (500.0,)), tables[1], 1.5),
    ]


def test_factors_are_the_views_columns_raised_to_their_weights():
    k, n = 16, 3
    codec, views = LatticeCodec(k), _views(k, n, seed=0)
    audio = np.random.default_rng(0).uniform(0, k - 1, 64).astype(np.float32)
    factors = observe_views(codec, views, audio).factors()
    expected = torch.ones(64, n, k, dtype=torch.float64)
    for view in views:
        tokens = encode_samples(codec, view.filter.apply(audio, RATE))
        for t, v in enumerate(tokens.tolist()):
            expected[t] *= view.table.column(v).pow(view.weight)
    torch.testing.assert_close(factors, expected)
    assert observe_views(codec, [], audio) is None


def test_each_window_searches_with_its_own_steps_factors(monkeypatch):
    """Windows of 9 tokens with a 3-token prefix: each window gets its own slice of the
    factors, so every candidate's score is its whole path's (priors + likelihood + log f)."""
    k, n = 16, 3
    priors, sources = lattice_problem(n, k, length=30, seed=3)
    g = torch.Generator().manual_seed(4)
    likelihood = MarginalLikelihood(torch.rand(n, k, k, generator=g) * 5, 0.1)
    codec, views = LatticeCodec(k), _views(k, n, seed=5)
    seen = []
    search = pipeline.separate

    def recording(*args, **kwargs):
        seen.append(kwargs["source_factors"])
        return search(*args, **kwargs)

    monkeypatch.setattr(pipeline, "separate", recording)
    mixture = sources.sum(0)
    result = separate_waveform(
        "mlass-pe", codec, priors, likelihood, mixture, num_candidates=4, search="mixed",
        window_tokens=9, prefix_tokens=3, consistency="none", views=views,
    )  # fmt: skip
    padded = (mixture / n).astype(np.float32)
    factors = observe_views(codec, views, padded).factors()
    assert [f.shape[0] for f in seen] == [9, 9, 9, 3]
    torch.testing.assert_close(torch.cat(seen), factors)
    tokens = result.tokens  # (C, N, T)
    y = encode_samples(codec, padded)
    expected = sum(markov_log_prob(p, tokens[:, i]) for i, p in enumerate(priors))
    for t in range(tokens.shape[2]):
        expected = expected + likelihood.log_prob(tokens[:, :, t], y[t].expand(4)).sum(1)
        for i in range(n):
            expected = expected + factors[t, i].log()[tokens[:, i, t]]
    torch.testing.assert_close(result.log_scores, expected)
