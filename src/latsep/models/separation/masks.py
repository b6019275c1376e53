"""Soft masks estimated at the models' rate, applied to the upload at its own rate.

The models run mono at 22,050 Hz; the stems go back as the user gave the mix. The decoded
sources set Wiener-style masks M_i = P_i / Σ_j P_j on an STFT at the models' rate
(`estimate_masks`, accumulated one candidate and one stem at a time, float32). Each source's
power P_i is the square of its *mean magnitude* over the candidates, averaged over
`SMOOTH_FRAMES` frames: the candidates are posterior samples, and the mean of their powers,
E|X|² = (E|X|)² + Var|X|, hands a bin to a source in proportion to how much its samples
disagree there; the squared mean magnitude keeps what they agree on (measured on 32 valid
chunks, 16 candidates, paired: +0.5 dB for lass over the mean power; smoothing over 5 frames,
58 ms, +0.15 dB more — see docs/bench/ablation.md). The
masks are then read on the STFT grid of every channel of the original-rate upload
(`apply_masks`): its frames last as long (n_fft scaled by the rate ratio, rounded to a power
of two), and each of its (frame, bin) cells takes the mask linearly interpolated at the same
time and frequency. Interpolating masks that sum to 1 gives masks that sum to 1, so the
stems sum to the upload, channel by channel, up to float error.

The band the models cannot see — above their Nyquist (11,025 Hz) — goes by this rule: each
stem takes, frame by frame, its share of the power in the top octave the models see well
(from Nyquist / 2 to 0.9 × Nyquist, 5,512–9,922 Hz; the resampler's roll-off starts above
it). Hi-hats and cymbals then follow the drums; bass gets little of that band.

The upload's STFT runs in blocks of frames, so memory does not grow with the duration
beyond the masks themselves ((N, F, T) float32 at the models' rate) and the output.
Blocks overlap by a frame length on each side and keep only their middle: every output
sample depends on the frames over it alone, so the result equals one whole STFT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

_EPS = 1e-12
TOP_BAND = (0.5, 0.9)  # fractions of the models' Nyquist whose power rules above it
BLOCK_FRAMES = 1024  # frames of the upload's STFT per block
SMOOTH_FRAMES = 5  # frames (hop 256 at 22,050 Hz: 58 ms) each source's power is averaged over


@dataclass(frozen=True)
class MaskGrid:
    """masks (N, F + 1, T) float32 on the models' STFT grid (F = n_fft // 2 + 1 bins, frame
    t centred at sample t · hop_length); row F is the rule for the band above the models'
    Nyquist. They sum to 1 over N everywhere."""

    masks: np.ndarray
    sample_rate: int
    n_fft: int
    hop_length: int


def stft_size(length: int, n_fft: int = 1024, hop_length: int = 256) -> tuple[int, int]:
    """n_fft and hop for `length` samples: short clips get the largest power of two that
    fits (the same rule as `wiener_stems`)."""
    if length < n_fft:
        n_fft = max(4, 1 << (max(length, 4).bit_length() - 1))
        hop_length = max(1, n_fft // 4)
    return n_fft, hop_length


class PowerAccumulator:
    """Each stem's power from its candidates, one candidate (N, L) at a time, float32:
    P_i = (mean_c |X̂_ci|)², averaged over `smooth_frames` frames (see the module's note)."""

    def __init__(
        self,
        sample_rate: int,
        n_fft: int = 1024,
        hop_length: int = 256,
        smooth_frames: int = SMOOTH_FRAMES,
    ) -> None:
        self.sample_rate = sample_rate
        self.n_fft, self.hop_length = n_fft, hop_length
        self.smooth_frames = smooth_frames
        self.magnitude: torch.Tensor | None = None  # Σ_c |X̂_ci|, (N, F, T)
        self.count = 0

    def add(self, candidate: np.ndarray) -> None:
        """candidate (N, L): one candidate's decoded sources."""
        n, length = candidate.shape
        if self.magnitude is None:
            self.n_fft, self.hop_length = stft_size(length, self.n_fft, self.hop_length)
        window = torch.hann_window(self.n_fft)
        for i, stem in enumerate(candidate):
            spec = _stft(
                torch.from_numpy(np.asarray(stem, np.float32)), self.n_fft, self.hop_length, window
            )
            if self.magnitude is None:
                self.magnitude = torch.zeros((n, *spec.shape), dtype=torch.float32)
            self.magnitude[i] += spec.abs()
        self.count += 1

    def power(self) -> torch.Tensor:
        """(N, F, T): the squared mean magnitude, averaged over time (edges: the frames
        there are)."""
        if self.magnitude is None:
            raise ValueError("no candidate was added")
        power = (self.magnitude / self.count) ** 2
        return smooth_over_time(power, self.smooth_frames)

    def grid(self) -> MaskGrid:
        """The masks M_i = P_i / Σ_j P_j, with the top-band row; uniform 1/N where all
        candidates are silent."""
        power = self.power()
        n = power.shape[0]
        freqs = torch.arange(power.shape[1]) * (self.sample_rate / self.n_fft)
        nyquist = self.sample_rate / 2
        top = (freqs >= TOP_BAND[0] * nyquist) & (freqs <= TOP_BAND[1] * nyquist)
        power = torch.cat([power, power[:, top].sum(1, keepdim=True)], 1)  # (N, F + 1, T)
        total = power.sum(0, keepdim=True)
        masks = torch.where(total > _EPS, power / total.clamp(min=_EPS), 1.0 / n)
        return MaskGrid(
            masks.numpy().astype(np.float32), self.sample_rate, self.n_fft, self.hop_length
        )


def smooth_over_time(power: torch.Tensor, frames: int) -> torch.Tensor:
    """(N, F, T) averaged over a centred window of `frames` frames (odd; 1: unchanged); at
    the edges the mean of the frames inside the clip."""
    if frames <= 1:
        return power
    if frames % 2 == 0:
        raise ValueError("smooth_frames must be odd (a centred window)")
    n, f, t = power.shape
    smoothed = torch.nn.functional.avg_pool1d(
        power.reshape(n * f, 1, t),
        frames,
        stride=1,
        padding=frames // 2,
        count_include_pad=False,
    )
    return smoothed.reshape(n, f, t)


def estimate_masks(
    estimates: np.ndarray, sample_rate: int, n_fft: int = 1024, hop_length: int = 256
) -> MaskGrid:
    """Masks from decoded sources: (N, L) one candidate, or (C, N, L) several (their
    consensus, see `PowerAccumulator`); uniform 1/N where all are silent."""
    candidates = np.asarray(estimates)
    if candidates.ndim == 2:
        candidates = candidates[None]
    accumulator = PowerAccumulator(sample_rate, n_fft, hop_length)
    for candidate in candidates:
        accumulator.add(candidate)
    return accumulator.grid()


def upload_stft_size(grid: MaskGrid, sample_rate: int) -> tuple[int, int]:
    """The upload's n_fft (frames as long as the models', to a power of two) and hop."""
    ratio = sample_rate / grid.sample_rate
    n_fft = 1 << max(2, round(math.log2(grid.n_fft * ratio)))
    return n_fft, max(1, n_fft * grid.hop_length // grid.n_fft)


def apply_masks(
    grid: MaskGrid, audio: np.ndarray, sample_rate: int, *, block_frames: int = BLOCK_FRAMES
) -> np.ndarray:
    """Stems of the upload: audio (channels, L) at `sample_rate` -> (N, channels, L) float32,
    which sum to `audio` over N."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ValueError("audio must be (channels, L)")
    channels, length = audio.shape
    n = grid.masks.shape[0]
    n_fft, hop = upload_stft_size(grid, sample_rate)
    n_fft, hop = stft_size(length, n_fft, hop)
    window = torch.hann_window(n_fft)
    out = np.zeros((n, channels, length), dtype=np.float32)
    bins = _bin_positions(grid, n_fft, sample_rate)  # (F0,) rows of the grid
    frames = length // hop + 1
    block_frames = max(1, block_frames)
    for first in range(0, frames, block_frames):
        start = first * hop  # output samples [start, stop)
        stop = min(length, (first + block_frames) * hop)
        if start >= length:
            break
        lo = max(0, start - n_fft)  # a multiple of hop: n_fft is 4 hops
        hi = min(length, stop + n_fft)
        segment = torch.from_numpy(audio[:, lo:hi])  # (channels, S)
        spec = _stft(segment, n_fft, hop, window)  # (channels, F0, Ts)
        times = (lo // hop + np.arange(spec.shape[-1])) * hop / sample_rate
        masks = torch.from_numpy(_masks_at(grid, bins, times))  # (N, F0, Ts)
        stems = torch.istft(
            (masks[:, None] * spec[None]).reshape(n * channels, *spec.shape[1:]),
            n_fft,
            hop,
            window=window,
            center=True,
            length=hi - lo,
        ).reshape(n, channels, hi - lo)
        out[:, :, start:stop] = stems[:, :, start - lo : stop - lo].numpy()
    return out


def _stft(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    return torch.stft(
        x,
        n_fft,
        hop,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )


def _bin_positions(grid: MaskGrid, n_fft: int, sample_rate: int) -> np.ndarray:
    """Fractional rows of the grid for the upload's bins; the band above the models' Nyquist
    reads the last row (the top-band rule)."""
    freqs = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    rows = freqs * grid.n_fft / grid.sample_rate
    above = freqs > grid.sample_rate / 2
    rows[above] = grid.masks.shape[1] - 1
    return rows


def _masks_at(grid: MaskGrid, rows: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(N, len(rows), len(times)) float32: the grid linearly interpolated at fractional rows
    and at `times` (seconds)."""
    masks = grid.masks
    last_frame = masks.shape[2] - 1
    cols = np.clip(times * grid.sample_rate / grid.hop_length, 0, last_frame)
    c0 = np.floor(cols).astype(np.int64)
    c1 = np.minimum(c0 + 1, last_frame)
    wc = (cols - c0).astype(np.float32)
    by_time = masks[:, :, c0] * (1 - wc) + masks[:, :, c1] * wc  # (N, F + 1, Tb)
    r0 = np.floor(rows).astype(np.int64)
    r1 = np.minimum(r0 + 1, masks.shape[1] - 1)
    below = r0 < masks.shape[1] - 1  # interpolate only inside the grid's own bins
    r1 = np.where(below, np.minimum(r1, masks.shape[1] - 2), r1)
    wr = np.where(below, rows - r0, 0.0).astype(np.float32)[None, :, None]
    return by_time[:, r0] * (1 - wr) + by_time[:, r1] * wr
