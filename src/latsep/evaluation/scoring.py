"""Per-chunk estimates and scores: a method's four picks, the codec ceiling, the baseline.

Scores are museval's BSSEval v4 SDR (median over 1-second frames; NaN when every frame of a
reference is silent) and SI-SDR, per source. The separation is timed alone: scoring and the
oracle's decode happen after the clock stops.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from latsep.methods import SearchSettings
from latsep.models.metrics import bss_sdr, si_sdr
from latsep.models.separation import Separator, decode_tokens
from latsep.models.separation.chunks import codec_device
from latsep.models.separation.consistency import wiener_stems

# chosen + Wiener, ensemble Wiener (masks from all candidates), chosen raw, oracle best-of-N raw
PICKS = ("wiener", "ensemble", "none", "oracle")


def score(
    references: np.ndarray, estimates: np.ndarray, sources: Sequence[str], sample_rate: int
) -> dict[str, dict[str, float]]:
    """{source: {"sdr", "si_sdr"}} for references, estimates (N, L)."""
    sdr = bss_sdr(references, estimates, sample_rate)
    si = si_sdr(references, estimates)
    return {s: {"sdr": float(sdr[i]), "si_sdr": float(si[i])} for i, s in enumerate(sources)}


def baseline_estimate(mixture: np.ndarray, num_sources: int) -> np.ndarray:
    """Every stem = mixture / N: what a method must beat to have separated anything. (N, L)"""
    return np.repeat(np.asarray(mixture, np.float64)[None] / num_sources, num_sources, 0)


def ceiling_estimate(codec: Any, stems: np.ndarray) -> np.ndarray:
    """Each true stem (N, L), at its own level, encoded and decoded: the best any token
    sequence of this codec reaches when the tokens are exactly right. (N, L)"""
    n, length = stems.shape
    hop = int(codec.hop_length)
    padded = np.zeros((n, -(-length // hop) * hop), dtype=np.float32)
    padded[:, :length] = stems
    with torch.inference_mode():
        tokens = codec.encode(torch.from_numpy(padded).to(codec_device(codec)))  # (N, T)
    return decode_tokens(codec, tokens[None], length)[0]


def run_method(
    separator: Separator, stems: np.ndarray, settings: SearchSettings, seed: int
) -> tuple[dict[str, Any], np.ndarray]:
    """Separate one chunk (stems (N, L) in the separator's order; the mixture is their plain
    sum) and score the four picks. Returns (record fields, the ensemble stems (N, L))."""
    mixture = stems.sum(0)
    start = time.perf_counter()
    result = separator.separate(mixture, settings, seed=seed, references=stems)
    seconds = time.perf_counter() - start  # the separation call alone
    # The chosen candidate's own masks: consistency="wiener" for the same draw (up to the
    # float32 rounding of raw_stems).
    raw = np.asarray(result.raw_stems, np.float64)
    chosen = wiener_stems(
        mixture,
        raw,
        percussive=separator.percussive,
        smoothing=separator.smoothing,
        mask_gains=separator.mask_gains,
    )
    oracle = separator.candidate_stems(result, int(result.oracle_index), mixture, masks=False)
    picks = {
        "wiener": chosen,
        "ensemble": result.stems,
        "none": result.raw_stems,
        "oracle": oracle,
    }
    sources = separator.sources
    scores: dict[str, dict[str, float]] = {s: {} for s in sources}
    for pick, estimate in picks.items():
        for source, values in score(stems, estimate, sources, separator.sample_rate).items():
            for metric, value in values.items():
                scores[source][f"{metric}_{pick}"] = value
    fields = {
        "seconds": seconds,
        "chosen": int(result.chosen),
        "oracle_index": int(result.oracle_index),
        "scores": scores,
    }
    return fields, np.asarray(result.stems, np.float64)
