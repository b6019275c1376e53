"""Soft masks estimated at the models' rate, applied to the upload at its own rate.

The models run mono at 22,050 Hz; the stems go back as the user gave the mix. The decoded
sources set Wiener-style masks M_i = P_i / Σ_j P_j on an STFT at the models' rate
(`masks_from_power`, float32). Each source's power P_i is the square of its *mean magnitude*
over the candidates (`segment_power`), averaged over `SMOOTH_FRAMES` frames
(`TimeSmoother`): the candidates are posterior samples, and the mean of their powers, E|X|²
= (E|X|)² + Var|X|, hands a bin to a source in proportion to how much its samples disagree
there; the squared mean magnitude keeps what they agree on (valid split, 32 chunks, 16
candidates, paired: +0.5 dB for lass over the mean power; the 5-frame average, 58 ms, +0.15
dB more; `bench/mask_study.py`, docs/bench/ablation.md). Where the sources are known, the
average is per source (`smoothing_for`): 15 frames (0.17 s) for steady sources (bass,
other), whose candidates' power is noisier than the notes change, 3 for drums, whose onsets
a long window would blur (valid, 32 chunks, paired with 5 frames for all: lass +0.09 /
+0.22 dB, mlass-bp with three sources +0.17 / +0.41 / +0.10, mlass-pe +0.16 / +0.51 /
+0.14). The masks are then read on the STFT grid of every channel of the original-rate
upload (`MaskApplier`): its frames last as long (n_fft scaled by the rate ratio, rounded
to a power of two), and each of its (frame, bin) cells takes the mask linearly interpolated
at the same time and frequency. Interpolating masks that sum to 1 gives masks that sum to
1, so the stems sum to the upload, channel by channel, up to float error.

The band the models cannot see — above their Nyquist (11,025 Hz) — goes by this rule: each
stem takes, frame by frame, its share of the power in the top octave the models see well
(from Nyquist / 2 to 0.9 × Nyquist, 5,512–9,922 Hz; the resampler's roll-off starts above
it). Hi-hats and cymbals then follow the drums; bass gets little of that band.

Nothing here holds a whole-length grid: power and masks are made for a block of the models'
frames at a time (`segment_power` on the samples those frames see; `TimeSmoother` holds back
a block's last frames until the next block completes their window), and `MaskApplier` takes
the masks in time order and cuts the stems of the blocks of the upload whose frames they
cover, keeping only the frames still ahead. Upload blocks overlap by a frame length on each
side and keep only their middle: every output sample depends on the frames over it alone,
so the result equals one whole STFT, whatever the block sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

_EPS = 1e-12
TOP_BAND = (0.5, 0.9)  # fractions of the models' Nyquist whose power rules above it
# Frames of the upload's STFT cut at a time (≈3 s): the transforms of 3 stems of a stereo
# 44.1 kHz block take ~70 MB at this size (~220 MB at 1,024); the overlap costs ~3 %.
UPLOAD_BLOCK_FRAMES = 256
SMOOTH_FRAMES = 5  # frames (hop 256 at 22,050 Hz: 58 ms) each source's power is averaged over
STEADY_FRAMES = 15  # per source (`smoothing_for`): steady sources, 0.17 s (25: lass bass −0.05)
ONSET_FRAMES = 3  # and percussive ones, 35 ms (1 to 5 tie on valid)
Smoothing = int | Sequence[int]  # one window for every source, or one per source (all odd)


def smoothing_for(percussive: Sequence[bool]) -> tuple[int, ...]:
    """Each source's averaging window: short for percussive sources, long for the rest."""
    return tuple(ONSET_FRAMES if p else STEADY_FRAMES for p in percussive)


def stft_size(length: int, n_fft: int = 1024, hop_length: int = 256) -> tuple[int, int]:
    """n_fft and hop for `length` samples: short clips get the largest power of two that
    fits (the same rule as `wiener_stems`)."""
    if length < n_fft:
        n_fft = max(4, 1 << (max(length, 4).bit_length() - 1))
        hop_length = max(1, n_fft // 4)
    return n_fft, hop_length


@dataclass(frozen=True)
class StftGrid:
    """The models' STFT over `length` samples at sample_rate: frame t is centred at sample
    t · hop_length and sees samples [t · hop − n_fft / 2, t · hop + n_fft / 2), zero
    outside the signal (torch's center=True with zero padding)."""

    sample_rate: int
    n_fft: int
    hop_length: int
    length: int

    @classmethod
    def covering(
        cls, length: int, sample_rate: int, n_fft: int = 1024, hop_length: int = 256
    ) -> StftGrid:
        """The grid for `length` samples (short clips: see `stft_size`)."""
        return cls(sample_rate, *stft_size(length, n_fft, hop_length), length)

    @property
    def frames(self) -> int:
        return self.length // self.hop_length + 1

    def span(self, first: int, stop: int) -> tuple[int, int]:
        """The samples [lo, hi) that frames [first, stop) see (lo may be < 0, hi > length:
        zeros there)."""
        half = self.n_fft // 2
        return first * self.hop_length - half, (stop - 1) * self.hop_length + half


@dataclass(frozen=True)
class MaskGrid:
    """masks (N, F + 1, T) float32 on the models' STFT grid `stft` (F = n_fft // 2 + 1 bins,
    T = stft.frames); row F is the rule for the band above the models' Nyquist. They sum to
    1 over N everywhere."""

    masks: np.ndarray
    stft: StftGrid


def segment_power(segments: np.ndarray, stft: StftGrid) -> torch.Tensor:
    """(mean_c |X̂_ci|)² (N, F, T') float32 for candidates' sources over the span of T'
    frames — the candidates' consensus power, before the time average: segments (C, N, S)
    with S = n_fft + (T' − 1) · hop, zeros outside the signal. One candidate's stem at a
    time: one extra spectrogram at most."""
    window = torch.hann_window(stft.n_fft)
    magnitude: torch.Tensor | None = None
    for candidate in segments:
        for i, stem in enumerate(candidate):
            spec = torch.stft(
                torch.from_numpy(np.ascontiguousarray(stem, np.float32)),
                stft.n_fft,
                stft.hop_length,
                window=window,
                center=False,  # the span already holds the frames' padding
                return_complex=True,
            )  # (F, T')
            if magnitude is None:
                magnitude = torch.zeros((segments.shape[1], *spec.shape), dtype=torch.float32)
            magnitude[i] += spec.abs()
    if magnitude is None:
        raise ValueError("no candidate was given")
    return (magnitude / len(segments)) ** 2


def smooth_over_time(power: torch.Tensor, frames: Smoothing = SMOOTH_FRAMES) -> torch.Tensor:
    """(N, F, T) averaged over a centred window of `frames` frames (odd; 1: unchanged), or
    source i over frames[i]; at the edges the mean of the frames inside."""
    if not isinstance(frames, int):
        if len(frames) != power.shape[0]:
            raise ValueError(f"{len(frames)} smoothing windows for {power.shape[0]} sources")
        return torch.cat([smooth_over_time(power[i : i + 1], w) for i, w in enumerate(frames)])
    if frames % 2 == 0 or frames < 1:
        raise ValueError("the smoothing window must be odd (centred)")
    if frames == 1:
        return power
    n, f, t = power.shape
    smoothed = torch.nn.functional.avg_pool1d(
        power.reshape(n * f, 1, t), frames, stride=1, padding=frames // 2, count_include_pad=False
    )
    return smoothed.reshape(n, f, t)


class TimeSmoother:
    """`smooth_over_time` for power that arrives a block of frames at a time, in time order:
    `add` returns the frames whose window is complete (a block's last frames // 2 wait for
    the next block — the longest window's, with one per source; `last=True` gives the rest).
    The concatenated output equals `smooth_over_time` of the whole, whatever the block
    sizes."""

    def __init__(self, frames: Smoothing = SMOOTH_FRAMES) -> None:
        windows = (frames,) if isinstance(frames, int) else tuple(frames)
        if not windows or any(w < 1 or w % 2 == 0 for w in windows):
            raise ValueError("the smoothing window must be odd (centred)")
        self.frames, self.half = frames, max(windows) // 2
        self._tail: torch.Tensor | None = None  # the last frames seen, unsmoothed
        self._context = 0  # how many of _tail's frames were already returned

    def add(self, power: torch.Tensor, *, last: bool = False) -> torch.Tensor:
        """power (N, F, T') -> smoothed (N, F, T'') for the frames now complete."""
        frames = power if self._tail is None else torch.cat([self._tail, power], 2)
        total = frames.shape[2]
        stop = total if last else max(self._context, total - self.half)
        # Frames before _tail are absent only at the clip's start, where the window holds
        # the frames inside: avg_pool's count_include_pad=False is that rule.
        ready = smooth_over_time(frames, self.frames)[:, :, self._context : stop]
        keep_from = max(0, stop - self.half)
        self._tail, self._context = frames[:, :, keep_from:], stop - keep_from
        return ready


def masks_from_power(
    power: torch.Tensor, stft: StftGrid, gains: torch.Tensor | None = None
) -> np.ndarray:
    """The masks M_i = P_i / Σ_j P_j (N, F + 1, T') float32, with the top-band row; uniform
    1/N where every source is silent. gains (N, F, 1) multiply each source's power by bin
    (`band_gains`); the top-band row is made of the power before them: they were fitted
    below the models' Nyquist, and nothing measured them above it."""
    n = power.shape[0]
    freqs = torch.arange(power.shape[1]) * (stft.sample_rate / stft.n_fft)
    nyquist = stft.sample_rate / 2
    top = (freqs >= TOP_BAND[0] * nyquist) & (freqs <= TOP_BAND[1] * nyquist)
    above = power[:, top].sum(1, keepdim=True)
    if gains is not None:
        power = power * gains
    power = torch.cat([power, above], 1)  # (N, F + 1, T')
    total = power.sum(0, keepdim=True)
    masks = torch.where(total > _EPS, power / total.clamp(min=_EPS), 1.0 / n)
    return masks.numpy().astype(np.float32, copy=False)


def consensus_power(
    estimates: np.ndarray,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 256,
    smoothing: Smoothing = SMOOTH_FRAMES,
) -> tuple[torch.Tensor, StftGrid]:
    """Whole decoded sources' power on their grid: (N, L) one candidate, or (C, N, L)
    several (their consensus: `segment_power`), averaged over `smoothing` frames -> power
    (N, F, T) float32 and the grid (`StftGrid.covering`)."""
    candidates = np.asarray(estimates, dtype=np.float32)
    if candidates.ndim == 2:
        candidates = candidates[None]
    stft = StftGrid.covering(candidates.shape[-1], sample_rate, n_fft, hop_length)
    lo, hi = stft.span(0, stft.frames)
    padded = np.zeros((*candidates.shape[:2], hi - lo), dtype=np.float32)
    padded[..., -lo : -lo + stft.length] = candidates
    return smooth_over_time(segment_power(padded, stft), smoothing), stft


def estimate_masks(
    estimates: np.ndarray, sample_rate: int, n_fft: int = 1024, hop_length: int = 256
) -> MaskGrid:
    """Masks from whole decoded sources (`consensus_power`, one time average for all);
    uniform 1/N where all are silent. The service's masks, with their prior, per-source
    averages and gains, are `consistency.wiener_stems`'s."""
    power, stft = consensus_power(estimates, sample_rate, n_fft, hop_length)
    return MaskGrid(masks_from_power(power, stft), stft)


def grid_stft(signals: np.ndarray, stft: StftGrid) -> torch.Tensor:
    """Complex STFT (..., F, T) of signals (..., L) on the grid (centred frames, zeros
    outside): the frames the masks are made on."""
    x = torch.as_tensor(np.ascontiguousarray(signals, np.float32))
    return _stft(x, stft.n_fft, stft.hop_length, torch.hann_window(stft.n_fft))


def upload_stft_size(stft: StftGrid, sample_rate: int) -> tuple[int, int]:
    """The upload's n_fft (frames as long as the models', to a power of two) and hop."""
    ratio = sample_rate / stft.sample_rate
    n_fft = 1 << max(2, round(math.log2(stft.n_fft * ratio)))
    return n_fft, max(1, n_fft * stft.hop_length // stft.n_fft)


class MaskApplier:
    """Stems of `audio` (channels, L) at `sample_rate`, cut by masks on the models' grid
    `stft` that arrive in time order (`add`, a block of frames at a time).

    Each block of the upload's STFT is cut as soon as the models' frames over it have
    arrived; the models' frames no later block needs are dropped, so what is held besides
    the audio and the stems is about a block of each grid. `stems` (after the last frame):
    N arrays (L, channels) float32, soundfile's layout, which sum to `audio` over N.
    """

    def __init__(
        self,
        audio: np.ndarray,
        sample_rate: int,
        stft: StftGrid,
        num_sources: int,
        *,
        block_frames: int = UPLOAD_BLOCK_FRAMES,
    ) -> None:
        self.audio = np.asarray(audio, dtype=np.float32)
        if self.audio.ndim != 2:
            raise ValueError("audio must be (channels, L)")
        channels, length = self.audio.shape
        self.sample_rate, self.stft = sample_rate, stft
        self.n_fft, self.hop = stft_size(length, *upload_stft_size(stft, sample_rate))
        self.window = torch.hann_window(self.n_fft)
        self.rows = _bin_positions(stft, self.n_fft, sample_rate)  # (F0,) rows of the grid
        self.block_frames = max(1, block_frames)
        self.out = [np.zeros((length, channels), dtype=np.float32) for _ in range(num_sources)]
        self._next = 0  # the first upload frame of the next block
        self._held = np.zeros((num_sources, stft.n_fft // 2 + 2, 0), dtype=np.float32)
        self._offset = 0  # the grid frame of _held's first column
        self._received = 0  # grid frames received so far

    @property
    def done(self) -> bool:
        return self._next * self.hop >= self.audio.shape[1]

    def add(self, masks: np.ndarray) -> None:
        """masks (N, F + 1, T') float32: the grid's next T' frames."""
        self._held = np.concatenate([self._held, masks], axis=2)
        self._received += masks.shape[2]
        if self._received > self.stft.frames:
            raise ValueError(f"more than the grid's {self.stft.frames} frames")
        while not self.done and self._cut_next_block():
            pass

    def stems(self) -> list[np.ndarray]:
        """The N stems (L, channels), once every frame has arrived."""
        if not self.done:
            raise ValueError(f"masks for {self.stft.frames - self._received} frames are missing")
        return self.out

    def _block(self, first: int) -> tuple[int, int, int, int, np.ndarray]:
        """Output samples [start, stop) of the block starting at upload frame `first`, the
        segment [lo, hi) it transforms and the grid columns (fractional) of its frames."""
        length = self.audio.shape[1]
        start = first * self.hop
        stop = min(length, (first + self.block_frames) * self.hop)
        lo = max(0, start - self.n_fft)  # a multiple of hop: n_fft is 4 hops
        hi = min(length, stop + self.n_fft)
        frames = (hi - lo) // self.hop + 1  # what torch.stft (center=True) gives
        times = (lo // self.hop + np.arange(frames)) * self.hop / self.sample_rate
        last = self.stft.frames - 1
        cols = np.clip(times * self.stft.sample_rate / self.stft.hop_length, 0, last)
        return start, stop, lo, hi, cols

    def _cut_next_block(self) -> bool:
        """Cut the next block if its grid frames have all arrived; say whether it did."""
        start, stop, lo, hi, cols = self._block(self._next)
        needed = min(int(np.floor(cols[-1])) + 1, self.stft.frames - 1)
        if needed >= self._received and self._received < self.stft.frames:
            return False
        segment = torch.from_numpy(self.audio[:, lo:hi])  # (channels, S)
        spec = _stft(segment, self.n_fft, self.hop, self.window)  # (channels, F0, Ts)
        held = (self._held, self._offset, self.stft.frames - 1)
        masks = torch.from_numpy(_masks_at(held, self.rows, cols))  # (N, F0, Ts)
        n, channels = len(self.out), self.audio.shape[0]
        stems = torch.istft(
            (masks[:, None] * spec[None]).reshape(n * channels, *spec.shape[1:]),
            self.n_fft,
            self.hop,
            window=self.window,
            center=True,
            length=hi - lo,
        ).reshape(n, channels, hi - lo)
        kept = stems[:, :, start - lo : stop - lo].numpy()  # (N, channels, stop − start)
        for i, out in enumerate(self.out):
            out[start:stop] = kept[i].T
        self._next += self.block_frames
        if not self.done:  # drop the grid frames before the next block's first
            first_col = int(np.floor(self._block(self._next)[4][0]))
            self._held = self._held[:, :, first_col - self._offset :]
            self._offset = first_col
        return True


def apply_masks(
    grid: MaskGrid, audio: np.ndarray, sample_rate: int, *, block_frames: int = UPLOAD_BLOCK_FRAMES
) -> np.ndarray:
    """Stems of the upload from a whole grid: audio (channels, L) at `sample_rate` ->
    (N, channels, L) float32, which sum to `audio` over N."""
    applier = MaskApplier(
        audio, sample_rate, grid.stft, grid.masks.shape[0], block_frames=block_frames
    )
    applier.add(grid.masks)
    return np.stack([stem.T for stem in applier.stems()])


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


def _bin_positions(stft: StftGrid, n_fft: int, sample_rate: int) -> np.ndarray:
    """Fractional rows of the grid for the upload's bins; the band above the models' Nyquist
    reads the last row (the top-band rule)."""
    freqs = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    rows = freqs * stft.n_fft / stft.sample_rate
    above = freqs > stft.sample_rate / 2
    rows[above] = stft.n_fft // 2 + 1  # the top-band row
    return rows


def _masks_at(held: tuple[np.ndarray, int, int], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, len(rows), len(cols)) float32: the grid linearly interpolated at fractional rows
    and columns (clipped to the grid); held = (masks (N, F + 1, T''), the grid column of its
    first, the grid's last column)."""
    masks, offset, last = held
    c0 = np.floor(cols).astype(np.int64)
    c1 = np.minimum(c0 + 1, last)
    wc = (cols - c0).astype(np.float32)
    by_time = masks[:, :, c0 - offset] * (1 - wc) + masks[:, :, c1 - offset] * wc
    r0 = np.floor(rows).astype(np.int64)
    r1 = np.minimum(r0 + 1, masks.shape[1] - 1)
    below = r0 < masks.shape[1] - 1  # interpolate only inside the grid's own bins
    r1 = np.where(below, np.minimum(r1, masks.shape[1] - 2), r1)
    wr = np.where(below, rows - r0, 0.0).astype(np.float32)[None, :, None]
    return by_time[:, r0] * (1 - wr) + by_time[:, r1] * wr  # (N, F0, Tb)
