"""Harmonic-percussive separation of the mix: parts that sum to it, computed in blocks that
change nothing, and the masks' prior on the grid, a block of frames at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latsep.models.separation import hpss
from latsep.models.separation.hpss import MaskPrior, harmonic_percussive, part_mask
from latsep.models.separation.masks import StftGrid

RATE = 22050


def _tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE)


def tone_and_clicks(seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    tone = 0.5 * _tone(440.0, seconds)
    clicks = np.zeros_like(tone)
    clicks[:: RATE // 4] = 8.0  # four clicks a second: broadband, one frame long
    return tone.astype(np.float32), clicks.astype(np.float32)


def test_the_harmonic_part_keeps_the_tone_and_the_percussive_part_the_clicks():
    tone, clicks = tone_and_clicks()
    mix = tone + clicks
    harmonic = harmonic_percussive(mix, "harmonic")
    percussive = harmonic_percussive(mix, "percussive")
    np.testing.assert_allclose(harmonic + percussive, mix, atol=1e-4)  # the masks sum to 1

    def share(part: np.ndarray, of: np.ndarray) -> float:  # of's energy found in part
        return float(np.dot(part, of) / np.dot(of, of))

    assert share(harmonic, tone) > 0.9 and share(percussive, tone) < 0.1
    assert share(percussive, clicks) > 0.8 and share(harmonic, clicks) < 0.2


def test_the_parts_are_computed_in_blocks_that_change_nothing(monkeypatch):
    """A long upload is split into blocks with context: the same result as one block."""
    audio = np.random.default_rng(0).standard_normal((2, 30_001)).astype(np.float32)
    whole = {part: harmonic_percussive(audio, part) for part in ("harmonic", "percussive")}
    monkeypatch.setattr(hpss, "BLOCK", 4096)
    for part, expected in whole.items():
        np.testing.assert_allclose(harmonic_percussive(audio, part), expected, atol=1e-5)
        # rows of a batch are separated independently, and short signals are fine
        np.testing.assert_allclose(harmonic_percussive(audio[1], part), expected[1], atol=1e-5)
    assert harmonic_percussive(audio[0, :100], "harmonic").shape == (100,)


def _grid_power(mixture: np.ndarray, stft: StftGrid) -> np.ndarray:
    """The mixture's power on the whole grid (torch's centred, zero-padded STFT)."""
    spec = torch.stft(
        torch.from_numpy(mixture), stft.n_fft, stft.hop_length,
        window=torch.hann_window(stft.n_fft), center=True, pad_mode="constant",
        return_complex=True,
    )  # fmt: skip
    return (spec.abs() ** 2).numpy()


def test_the_masks_prior_is_each_source_s_share_of_the_whole_grid_block_by_block():
    tone, clicks = tone_and_clicks(3.0)
    mixture = tone + clicks
    stft = StftGrid.covering(len(mixture), RATE)
    prior = MaskPrior(mixture, stft, (False, True, False), exponent=0.5)
    power = _grid_power(mixture, stft)
    harmonic, percussive = part_mask(power, "harmonic"), part_mask(power, "percussive")
    expected = np.stack([harmonic, percussive, harmonic]) ** 0.5
    for step in (1, 7, 40, stft.frames):  # any blocks: the weights of the whole grid
        got = torch.cat(
            [prior.weights(a, min(a + step, stft.frames)) for a in range(0, stft.frames, step)], 2
        )
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    # the drums' weight is high at a click and low on the steady tone between clicks
    click, between = 0, RATE // 8 // stft.hop_length
    assert expected[1, 100:, click].mean() > 0.7 and expected[1, 15:25, between].mean() < 0.3


def test_the_masks_prior_is_left_out_where_it_would_cancel():
    stft = StftGrid.covering(4096, RATE)
    mixture = np.zeros(4096, np.float32)
    assert MaskPrior.for_sources(mixture, stft, (False, False), 0.5) is None
    assert MaskPrior.for_sources(mixture, stft, (True, True, True), 0.5) is None
    assert MaskPrior.for_sources(mixture, stft, (False, True), 0.0) is None
    assert MaskPrior.for_sources(mixture, stft, (False, True), 0.5) is not None
    with pytest.raises(ValueError, match="exponent"):
        MaskPrior(mixture, stft, (False, True), -1.0)
    with pytest.raises(ValueError, match="part"):
        part_mask(np.ones((4, 4)), "steady")
