"""A stand-in for separate_waveform with a known answer, for the bench tests."""

from __future__ import annotations

import time

import numpy as np
import torch

from latsep.models.separation import WaveformSeparation


class FakeSeparate:
    """Stems (what the bench asks for: consistency="ensemble") = ½ reference + mixture/2N
    (they sum to the mixture), raw = the reference at half level, after `delay` seconds;
    records the method of every call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[str] = []
        self.consistencies: list[str] = []
        self.levels: list[float | None] = []  # the stem_level_dbfs each call was given
        self.peaks: list[float] = []  # the mixture's peak, to see held-out level shifts

    def __call__(self, method, codec, priors, likelihood, mixture, **kw) -> WaveformSeparation:
        self.calls.append(method)
        self.consistencies.append(kw["consistency"])
        self.levels.append(kw.get("stem_level_dbfs"))
        self.peaks.append(float(np.abs(mixture).max()))
        if self.delay:
            time.sleep(self.delay)
        refs = kw["references"]
        n = refs.shape[0]
        return WaveformSeparation(
            stems=(0.5 * refs + mixture / (2 * n)).astype(np.float32),
            raw_stems=(0.5 * refs).astype(np.float32),
            chosen=0,
            candidate_consistency=np.zeros(1),
            oracle_index=0,
            oracle_si_sdr=np.zeros(1),
            tokens=torch.zeros(1, n, 4, dtype=torch.long),
            log_scores=torch.zeros(1),
            fallback_steps=torch.zeros(1, dtype=torch.long),
        )
