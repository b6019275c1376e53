"""A comb on the bass's harmonics in the masks: the bass's f0 per frame, and its power near
k·f0 raised, elsewhere lowered, between 150 and 1,500 Hz — scored on dumped candidates,
paired with the service's masks (no gains by band).

With three sources the masks give the bass its share below 200 Hz and hand its harmonics
above to "other" (docs/bench/ablation.md, session 13). Its pitch, though, is right where its
share is: the f0 of the service's own bass stem places the harmonics. "true f0" takes the
f0 from the reference bass instead (an upper bound of the idea, not a result).

    .venv/bin/python bench/mask_study.py dump --bundle artifacts/default/plain \\
        --method mlass-bp --sources 3 --corpus data/corpus --chunks 32 --candidates 8 \\
        --out /tmp/study/bp-3
    .venv/bin/python bench/comb_study.py /tmp/study/bp-3 --widths 10 --exponents 1 2 4

f0: harmonic summation over 30–260 Hz in 1-Hz steps, six harmonics weighted 0.8^(k−1), on
the square root of a 4096-point magnitude spectrum (hop 256: the masks' frames). Comb: W =
max_k exp(−(f − k·f0)² / 2σ²); the bass's power times (0.05 + W)^a / 0.55^a in the band.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from latsep.audio import SAMPLE_RATE
from latsep.models.metrics import bss_sdr
from latsep.models.separation.consistency import mask_power
from latsep.models.separation.masks import (
    MaskGrid,
    StftGrid,
    apply_masks,
    masks_from_power,
    smoothing_for,
)
from studies import print_paired

F0_HZ = np.arange(30.0, 260.0, 1.0)
PITCH_FFT = 4096
HARMONICS = 6
BAND_HZ = (150.0, 1500.0)
FLOOR = 0.05
BASS, DRUMS = 0, 1  # the dumps' source order: bass, drums, other


def f0_track(audio: np.ndarray, frames: int, hop: int = 256) -> np.ndarray:
    """(frames,) the f0 in Hz of each centred frame, by harmonic summation."""
    spectrum = torch.stft(
        torch.as_tensor(audio, dtype=torch.float32),
        PITCH_FFT,
        hop,
        window=torch.hann_window(PITCH_FFT),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    magnitude = spectrum.abs().sqrt().numpy()  # (F, T) compressed
    score = np.zeros((len(F0_HZ), magnitude.shape[1]))
    for k in range(1, HARMONICS + 1):
        position = F0_HZ * k * PITCH_FFT / SAMPLE_RATE  # fractional bins
        low = np.floor(position).astype(int)
        weight = (position - low)[:, None]
        score += (magnitude[low] * (1 - weight) + magnitude[low + 1] * weight) * 0.8 ** (k - 1)
    return F0_HZ[np.argmax(score, 0)][:frames]


def comb_weights(f0: np.ndarray, freqs: np.ndarray, width: float, exponent: float) -> np.ndarray:
    """(F, T) the bass's power weights: the comb inside BAND_HZ, 1 outside."""
    harmonics = np.arange(1, int(BAND_HZ[1] / F0_HZ[0]) + 2)
    distance = freqs[:, None, None] - harmonics[None, :, None] * f0[None, None, :]  # (F, H, T)
    comb = np.exp(-(distance**2) / (2 * width**2)).max(1)
    inside = ((freqs >= BAND_HZ[0]) & (freqs < BAND_HZ[1]))[:, None]
    return np.where(inside, ((FLOOR + comb) / (FLOOR + 0.5)) ** exponent, 1.0)


def masked_stems(
    mixture: np.ndarray, power: torch.Tensor, grid: StftGrid, bass: np.ndarray | None = None
) -> np.ndarray:
    """(N, L) the mixture through the masks of `power`, the bass's times `bass` (F, T)."""
    weighted = power.clone()
    if bass is not None:
        weighted[BASS] *= torch.as_tensor(bass, dtype=torch.float32)
    masks = MaskGrid(masks_from_power(weighted, grid), grid)
    return apply_masks(masks, mixture[None].astype(np.float32), SAMPLE_RATE)[:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--widths", type=float, nargs="+", default=[10.0], help="σ, Hz")
    parser.add_argument("--exponents", type=float, nargs="+", default=[1.0, 2.0])
    args = parser.parse_args()
    rows: dict[str, list[np.ndarray]] = {}
    for path in sorted(Path(args.dir).glob("*.npz")):
        data = np.load(path)
        candidates, references = data["candidates"], data["references"]
        n = references.shape[0]
        mixture = references.sum(0)
        percussive = [i == DRUMS for i in range(n)]
        power, grid = mask_power(
            mixture, candidates, percussive=percussive, smoothing=smoothing_for(percussive)
        )
        baseline = bss_sdr(references, np.repeat(mixture[None] / n, n, 0), SAMPLE_RATE)

        service = masked_stems(mixture, power, grid)
        rows.setdefault("service", []).append(bss_sdr(references, service, SAMPLE_RATE) - baseline)
        freqs = np.arange(power.shape[1]) * SAMPLE_RATE / grid.n_fft
        for name, source in (("own f0", service[BASS]), ("true f0", references[BASS])):
            f0 = f0_track(source, grid.frames)
            for width in args.widths:
                for exponent in args.exponents:
                    weights = comb_weights(f0, freqs, width, exponent)
                    out = masked_stems(mixture, power, grid, weights)
                    margin = bss_sdr(references, out, SAMPLE_RATE) - baseline
                    rows.setdefault(f"{name} σ{width:g} a{exponent:g}", []).append(margin)
    print_paired(rows, "service", f"{args.dir}: SDR margin over mixture/N per source")


if __name__ == "__main__":
    main()
