"""Harmonic-percussive separation of the mix by median filtering (Fitzgerald, DAFx 2010).

On a power spectrogram, a steady tone is a horizontal line and an onset a vertical one: a
median over time (17 frames, 0.2 s) keeps the first and drops the second, a median over
frequency (17 bins, 370 Hz) the reverse. Their soft masks (librosa's, power 2 on magnitudes:
steady / (steady + onsets)) split the mix into parts that sum to it. Two uses, neither needing
a model: views of the mix's harmonic or percussive part (`views.ViewFilter`), and the
masks' prior that a drum stem holds the mix's onsets and the other stems its steady tones
(`MaskPrior`: valid, 32 chunks, paired, +0.7 dB on both sources of lass, +1.0 dB on the drums
of mlass-pe with three sources; docs/bench/ablation.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.ndimage import median_filter
from scipy.signal import istft, stft

from latsep.models.separation.masks import StftGrid, segment_power

PARTS = ("harmonic", "percussive")
PERCUSSIVE_SOURCES = frozenset({"drums"})  # stems made of onsets; every other is steady
KERNEL = 17  # frames over time and bins over frequency, at n_fft 1024, hop 256, 22.05 kHz
FFT = 1024  # the views' transform: the masks' grid (masks.StftGrid) at the models' rate
BLOCK = 1 << 19  # samples per block (24 s): a long upload's spectrogram is never whole
MASK_EXPONENT = 0.5  # the masks' prior, chosen on valid (0.25 to 1 tried; docs/bench)


def part_masks(power: np.ndarray) -> dict[str, np.ndarray]:
    """Both parts' soft masks on a power spectrogram (..., F, T), from one pair of medians:
    each part's median-filtered power over both parts' (0 where the power is 0 in every
    neighbour), float32."""
    lead = (1,) * (power.ndim - 2)
    steady = median_filter(power, size=(*lead, 1, KERNEL), mode="reflect")
    onsets = median_filter(power, size=(*lead, KERNEL, 1), mode="reflect")
    total = np.maximum(steady + onsets, np.finfo(np.float32).tiny)
    return {
        "harmonic": (steady / total).astype(np.float32),
        "percussive": (onsets / total).astype(np.float32),
    }


def part_mask(power: np.ndarray, part: str) -> np.ndarray:
    """The soft mask of one part (`part_masks`)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}; got {part!r}")
    return part_masks(power)[part]


def harmonic_percussive(audio: np.ndarray, part: str) -> np.ndarray:
    """The harmonic or percussive part of audio (..., L), float32 (the two parts sum to the
    input). Computed in blocks of BLOCK samples with enough context either side that the
    result equals the whole signal's (a block's edges never reach the samples it keeps)."""
    length = audio.shape[-1]
    hop = FFT // 4
    # frames that see a sample, and medians that see those frames, stay inside the context
    context = (KERNEL // 2 + FFT // hop + 1) * hop
    out = np.empty(audio.shape, np.float32)
    for start in range(0, length, BLOCK):  # starts on the hop grid: frames line up
        first, last = max(0, start - context), min(length, start + BLOCK + context)
        block = _part_of_block(audio[..., first:last], part)
        stop = min(length, start + BLOCK)
        out[..., start:stop] = block[..., start - first : stop - first]
    return out


def _part_of_block(audio: np.ndarray, part: str) -> np.ndarray:
    length, hop = audio.shape[-1], FFT // 4
    if length < FFT:  # stft needs one whole frame
        audio = np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, FFT - length)])
    frame = {"nperseg": FFT, "noverlap": FFT - hop}
    _, _, spec = stft(np.asarray(audio, np.float32), axis=-1, **frame)  # (..., F, T)
    _, out = istft(spec * part_mask(np.abs(spec) ** 2, part), **frame)
    return np.asarray(out[..., :length], np.float32)


class MaskPrior:
    """Weights on each source's power before the masks: the mix's percussive share for a
    percussive source, its harmonic share for the others, raised to `exponent`, on the
    masks' grid `stft`, for frames [first, stop) at a time (`weights`). A block's medians
    see 8 frames either side of it, so the weights equal those of the whole grid."""

    def __init__(
        self,
        mixture: np.ndarray,
        stft: StftGrid,
        percussive: Sequence[bool],
        exponent: float = MASK_EXPONENT,
    ) -> None:
        if not exponent > 0:
            raise ValueError(f"the masks' prior exponent must be > 0; got {exponent}")
        self.mixture = np.asarray(mixture, np.float32)
        self.stft, self.percussive, self.exponent = stft, tuple(percussive), exponent

    @classmethod
    def for_sources(
        cls, mixture: np.ndarray, stft: StftGrid, percussive: Sequence[bool], exponent: float
    ) -> MaskPrior | None:
        """None where it would change nothing: weights the same for every source cancel in
        the masks (no percussive source, or only percussive ones), and exponent 0."""
        if exponent == 0 or len(set(percussive)) < 2:
            return None
        return cls(mixture, stft, percussive, exponent)

    def weights(self, first: int, stop: int) -> torch.Tensor:
        """(N, F, stop - first) float32 for the grid's frames [first, stop)."""
        lo_frame = max(0, first - KERNEL // 2)
        hi_frame = min(self.stft.frames, stop + KERNEL // 2)
        lo, hi = self.stft.span(lo_frame, hi_frame)
        segment = np.zeros(hi - lo, np.float32)  # zeros outside the signal, as segment_power
        inside = slice(max(lo, 0), min(hi, self.stft.length))
        segment[inside.start - lo : inside.stop - lo] = self.mixture[inside]
        power = segment_power(segment[None, None], self.stft)[0].numpy()  # (F, frames)
        keep = slice(first - lo_frame, stop - lo_frame)
        shares = {
            part: torch.from_numpy(mask[:, keep]) ** self.exponent
            for part, mask in part_masks(power).items()
        }
        return torch.stack([shares["percussive" if p else "harmonic"] for p in self.percussive])
