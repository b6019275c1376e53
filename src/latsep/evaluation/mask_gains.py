"""Fit a method's gains by band on the masks' power (`band_gains`) on a corpus split.

Each chunk is separated exactly as the service separates it (the bundle's models, its tuned
defaults, the masks' prior and time averages, no gains yet), and every candidate's decoded
sources give the power the masks weigh (`consistency.mask_power`, the service's), kept
beside the chunk's true stems; the gains are then the ones whose masks rebuild the stems
best (`band_gains.fit_band_gains`). Chunks are drawn like the benchmark's
(`evaluation_chunks`, one seed per chunk). The valid split by default: songs the models never
trained on, as an upload is (the benchmark reports the test split and the held-out
soundfont, neither of which a fit sees).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from latsep.bundle import Bundle
from latsep.corpus import evaluation_chunks
from latsep.evaluation.config import Overrides, method_settings
from latsep.evaluation.runner import chunk_seed
from latsep.models.separation import Separator
from latsep.models.separation.band_gains import BandGains, GainSample, fit_band_gains
from latsep.models.separation.consistency import mask_power
from latsep.models.separation.hpss import MASK_EXPONENT
from latsep.models.separation.masks import (
    ONSET_FRAMES,
    STEADY_FRAMES,
    Smoothing,
    StftGrid,
    grid_stft,
)

CHUNK_SECONDS = 3.0  # the benchmark's chunks


def fitted_on() -> dict[str, object]:
    """The settings of the power the gains are fitted on, recorded beside them."""
    return {
        "mask_prior": MASK_EXPONENT,
        "smoothing": {"steady": STEADY_FRAMES, "onsets": ONSET_FRAMES},
        "n_fft": 1024,
        "hop_length": 256,
    }


def gain_sample(
    candidates: np.ndarray,
    stems: np.ndarray,
    smoothing: Smoothing,
    percussive: Sequence[bool],
) -> tuple[GainSample, StftGrid]:
    """One chunk for the fit: the power the service's masks weigh (`mask_power`) from the
    candidates' decoded sources (C, N, L), with the mixture's and the true stems' (N, L)
    STFT on the same grid; and the grid."""
    mixture = stems.sum(0)
    power, grid = mask_power(mixture, candidates, percussive=percussive, smoothing=smoothing)
    return GainSample(power, grid_stft(mixture, grid), grid_stft(stems, grid)), grid


def fit_mask_gains(
    bundle: Bundle,
    method: str,
    sources: Sequence[str],
    corpus: str | Path,
    *,
    chunks: int = 64,
    split: str = "valid",
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> BandGains:
    """The gains for `method` on `sources` (in this order), fitted on `chunks` chunks of
    `split` separated with the bundle's defaults."""
    separator = Separator(bundle, method, sources, mask_gains=False)
    settings = method_settings(
        method, len(sources), Overrides(), bundle.separation_defaults(method, len(sources))
    )
    picked = evaluation_chunks(
        corpus, sources, split=split, seconds=CHUNK_SECONDS, count=chunks, seed=seed
    )
    samples: list[GainSample] = []
    grid = None
    for i, chunk in enumerate(picked):
        stems = np.asarray(chunk.stems, np.float64)
        start = time.perf_counter()
        mixture = stems.sum(0)
        result = separator.separate(mixture, settings, seed=chunk_seed(seed, chunk))
        candidates = [
            separator.candidate_stems(result, c, mixture, masks=False)
            for c in range(result.tokens.shape[0])
        ]  # (C, N, L): every candidate's decoded sources
        sample, grid = gain_sample(
            np.stack(candidates), stems, separator.smoothing, separator.percussive
        )
        samples.append(sample)
        seconds = time.perf_counter() - start
        log(f"{i + 1}/{len(picked)} {chunk.song_id}@{chunk.start}: {seconds:.1f} s")
    if grid is None:
        raise ValueError(f"no {split} chunks in {corpus} where every source sounds")
    return fit_band_gains(samples, grid)
