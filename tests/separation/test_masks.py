"""Masks from the models' rate applied to the upload at its own rate and channels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from latsep.models.separation import wiener_stems
from latsep.models.separation.masks import (
    ONSET_FRAMES,
    SMOOTH_FRAMES,
    STEADY_FRAMES,
    MaskApplier,
    TimeSmoother,
    apply_masks,
    estimate_masks,
    smooth_over_time,
    smoothing_for,
    upload_stft_size,
)

RATE = 22050


def candidates(seed: int = 0, length: int = RATE) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((3, 2, length)).astype(np.float32)


def _stft(x: np.ndarray, n_fft: int = 1024, hop: int = 256) -> torch.Tensor:
    window = torch.hann_window(n_fft, dtype=torch.float64)
    return torch.stft(
        torch.from_numpy(np.asarray(x, np.float64)),
        n_fft,
        hop,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )


def expected_masks(estimates: np.ndarray, frames: int = SMOOTH_FRAMES) -> np.ndarray:
    """Written out: P_i = (mean_c |X_ci|)², each frame the mean over the centred window's
    frames inside the clip, M_i = P_i / Σ_j P_j. (N, F, T) float64."""
    magnitude = np.mean([[_stft(stem).abs().numpy() for stem in c] for c in estimates], 0)
    power = magnitude**2
    t = power.shape[-1]
    half = frames // 2
    smoothed = np.stack(
        [power[..., max(0, k - half) : min(t, k + half + 1)].mean(-1) for k in range(t)], -1
    )
    return smoothed / smoothed.sum(0, keepdims=True)


def test_masks_are_the_squared_mean_magnitude_averaged_over_frames() -> None:
    estimates = candidates()
    grid = estimate_masks(estimates, RATE)
    np.testing.assert_allclose(grid.masks[:, :-1], expected_masks(estimates), atol=2e-5)
    np.testing.assert_allclose(grid.masks.sum(0), 1.0, atol=1e-5)


def _smooth_in_blocks(smoother: TimeSmoother, power: torch.Tensor, sizes: list[int]):
    """power (N, F, T) fed to `smoother` in blocks of these sizes, the outputs concatenated."""
    parts, start = [], 0
    for k, size in enumerate(sizes):
        parts.append(smoother.add(power[:, :, start : start + size], last=k == len(sizes) - 1))
        start += size
    return torch.cat(parts, 2)


@pytest.mark.parametrize("sizes", [[37], [1] * 37, [2, 1, 5, 3, 26], [4, 30, 3]])
@pytest.mark.parametrize("frames", [1, 3, 5])
def test_smoothing_block_by_block_equals_smoothing_the_whole(sizes: list[int], frames: int) -> None:
    power = torch.from_numpy(np.random.default_rng(5).random((2, 3, sum(sizes)), np.float32))
    t = power.shape[2]
    whole = torch.stack(
        [power[:, :, max(0, k - frames // 2) : k + frames // 2 + 1].mean(2) for k in range(t)], 2
    )
    blocks = _smooth_in_blocks(TimeSmoother(frames), power, sizes)
    np.testing.assert_allclose(blocks.numpy(), whole.numpy(), rtol=1e-6)


@pytest.mark.parametrize("sizes", [[37], [1] * 37, [2, 1, 5, 3, 26]])
def test_each_source_s_own_window_block_by_block(sizes: list[int]) -> None:
    """One window per source: source i is averaged over frames[i], whatever the blocks."""
    windows = (9, 1, 3)
    power = torch.from_numpy(np.random.default_rng(6).random((3, 4, sum(sizes)), np.float32))
    t = power.shape[2]
    whole = torch.stack(
        [
            torch.stack(
                [power[i, :, max(0, k - w // 2) : k + w // 2 + 1].mean(1) for k in range(t)], 1
            )
            for i, w in enumerate(windows)
        ]
    )
    blocks = _smooth_in_blocks(TimeSmoother(windows), power, sizes)
    np.testing.assert_allclose(blocks.numpy(), whole.numpy(), rtol=1e-6)
    np.testing.assert_allclose(smooth_over_time(power, windows).numpy(), whole.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="windows for 3 sources"):
        smooth_over_time(power, (9, 1))
    with pytest.raises(ValueError, match="odd"):
        TimeSmoother((9, 2, 3))


def test_drums_get_a_short_window_and_the_other_sources_a_long_one() -> None:
    assert smoothing_for((False, True, False)) == (STEADY_FRAMES, ONSET_FRAMES, STEADY_FRAMES)
    assert ONSET_FRAMES < SMOOTH_FRAMES < STEADY_FRAMES


def test_at_the_models_rate_mono_the_stems_are_the_masked_mixture() -> None:
    estimates = candidates()
    mixture = np.random.default_rng(1).standard_normal(RATE)
    spec = _stft(mixture)
    want = torch.istft(
        torch.from_numpy(expected_masks(estimates)) * spec[None],
        1024,
        256,
        window=torch.hann_window(1024, dtype=torch.float64),
        center=True,
        length=RATE,
    ).numpy()
    stems = apply_masks(estimate_masks(estimates, RATE), mixture[None], RATE)[:, 0]
    np.testing.assert_allclose(stems, want, atol=1e-4)
    np.testing.assert_allclose(wiener_stems(mixture, estimates), stems, atol=1e-6)


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (48000, 2), (8000, 1), (96000, 4)])
def test_stems_sum_to_the_upload_channel_by_channel(rate: int, channels: int) -> None:
    upload = np.random.default_rng(rate).standard_normal((channels, rate)).astype(np.float32)
    stems = apply_masks(estimate_masks(candidates(), RATE), upload, rate)
    assert stems.shape == (2, channels, rate) and stems.dtype == np.float32
    np.testing.assert_allclose(stems.sum(0), upload, atol=1e-5)


@pytest.mark.parametrize("block_frames", [1, 3, 50])
def test_blocks_give_what_one_whole_stft_gives(block_frames: int) -> None:
    grid = estimate_masks(candidates(), RATE)
    upload = np.random.default_rng(2).standard_normal((2, 44100)).astype(np.float32)
    whole = apply_masks(grid, upload, 44100, block_frames=10**6)
    np.testing.assert_allclose(
        apply_masks(grid, upload, 44100, block_frames=block_frames), whole, atol=1e-6
    )


@pytest.mark.parametrize(("rate", "block_frames"), [(44100, 7), (48000, 3), (22050, 50)])
def test_masks_that_arrive_in_pieces_cut_what_the_whole_grid_cuts(rate, block_frames) -> None:
    """The grid's frames handed over a few at a time, in uneven pieces: each upload block is
    cut once its frames are there, and the stems are the whole grid's."""
    grid = estimate_masks(candidates(), RATE)
    upload = np.random.default_rng(5).standard_normal((2, rate)).astype(np.float32)
    applier = MaskApplier(upload, rate, grid.stft, len(grid.masks), block_frames=block_frames)
    pieces = np.random.default_rng(6).integers(1, 9, size=grid.stft.frames)
    edges = np.minimum(np.concatenate([[0], np.cumsum(pieces)]), grid.stft.frames)
    for lo, hi in itertools.pairwise(np.unique(edges)):
        assert not applier.done
        applier.add(grid.masks[:, :, lo:hi])
    assert applier.done
    streamed = np.stack([stem.T for stem in applier.stems()])
    np.testing.assert_array_equal(streamed, apply_masks(grid, upload, rate))


@pytest.mark.parametrize("length", [1, 5, 100, 1000])
def test_short_uploads(length: int) -> None:
    upload = np.random.default_rng(3).standard_normal((2, length)).astype(np.float32)
    stems = apply_masks(estimate_masks(candidates(length=max(1, length // 2)), RATE), upload, 44100)
    np.testing.assert_allclose(stems.sum(0), upload, atol=1e-5)


def test_frames_last_as_long_at_any_rate() -> None:
    grid = estimate_masks(candidates(), RATE)
    assert upload_stft_size(grid.stft, 22050) == (1024, 256)
    assert upload_stft_size(grid.stft, 44100) == (2048, 512)
    assert upload_stft_size(grid.stft, 48000) == (2048, 512)


def test_the_band_above_the_models_nyquist_follows_the_top_octave() -> None:
    """Source 0 is low (200 Hz), source 1 holds 5.5-9.9 kHz: above 11,025 Hz of a 44.1 kHz
    upload, everything goes to source 1; a low tone stays with source 0."""
    t = np.arange(RATE) / RATE
    low = np.sin(2 * np.pi * 200 * t)
    rng = np.random.default_rng(4)
    spectrum = np.fft.rfft(rng.standard_normal(RATE))
    freqs = np.fft.rfftfreq(RATE, 1 / RATE)
    spectrum[(freqs < 6000) | (freqs > 9500)] = 0
    high = np.fft.irfft(spectrum, RATE)
    grid = estimate_masks(np.stack([low, high]).astype(np.float32), RATE)
    u = np.arange(44100) / 44100
    upload = (np.sin(2 * np.pi * 200 * u) + np.sin(2 * np.pi * 15000 * u)).astype(np.float32)
    bass, hats = apply_masks(grid, upload[None], 44100)[:, 0]
    mid = slice(4410, -4410)
    spec_hats = np.abs(np.fft.rfft(hats[mid]))
    spec_bass = np.abs(np.fft.rfft(bass[mid]))
    f = np.fft.rfftfreq(len(hats[mid]), 1 / 44100)
    at_15k, at_200 = np.argmin(np.abs(f - 15000)), np.argmin(np.abs(f - 200))
    assert spec_hats[at_15k] > 100 * spec_bass[at_15k]
    assert spec_bass[at_200] > 100 * spec_hats[at_200]
