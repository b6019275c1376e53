"""Resumed bench runs never report another machine setup's timings: the method rows' resume
key holds torch threads and device; the reference rows (no timings) stay shared."""

from __future__ import annotations

import time

import numpy as np
import torch

from latsep.bench import BenchConfig, run_bench
from latsep.bench.cases import BASELINE, CEILING, METHOD, Case
from latsep.bench.runner import _keyed_by_setup
from latsep.models.metrics import si_sdr
from latsep.models.separation import WaveformSeparation


class SlowSeparate:
    """Stems = ½ reference + mixture/2N after `delay` seconds; counts its calls."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0

    def __call__(self, method, codec, priors, likelihood, mixture, **kw) -> WaveformSeparation:
        self.calls += 1
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


def test_resume_with_other_threads_re_times_the_separation(
    tiny_bundles, corpus, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("latsep.bench.scoring.bss_sdr", lambda ref, est, sr: si_sdr(ref, est))
    common = {"bundles": tiny_bundles, "corpus": corpus, "out": tmp_path / "out", "chunks": 1,
              "seconds": 1.0, "methods": ("lass",), "sources": (2,)}  # fmt: skip
    try:
        run_bench(BenchConfig(threads=1, **common), separate=SlowSeparate(delay=0.5))
        fast = SlowSeparate(delay=0.0)
        results = run_bench(BenchConfig(threads=2, **common), separate=fast)
    finally:
        torch.set_num_threads(1)
    assert results["machine"]["torch_threads"] == 2
    (row,) = [r for r in results["rows"] if r["kind"] == METHOD]
    # The 2-thread run separated the chunk again (its stems also draw the spectrogram) and
    # reports its own ~0 s, not the 1-thread run's 0.5 s.
    assert fast.calls == 1
    assert row["chunks"][0]["seconds"] < 0.25


def test_only_method_rows_are_keyed_by_the_setup() -> None:
    cases = [
        Case(METHOD, ("bass", "drums"), "m", method="lass", bundle="plain"),
        Case(CEILING, ("bass", "drums"), "c", bundle="plain"),
        Case(BASELINE, ("bass", "drums"), "b"),
    ]
    setups = [
        {"threads": 1, "device": "cpu"},
        {"threads": 2, "device": "cpu"},
        {"threads": 1, "device": "cuda: NVIDIA H100"},
    ]
    keyed = [_keyed_by_setup(cases, setup) for setup in setups]
    assert len({k[0].key for k in keyed}) == 3  # every setup times its own method rows
    assert all([c.key for c in k[1:]] == ["c", "b"] for k in keyed)
    assert _keyed_by_setup(cases, setups[0])[0].key == keyed[0][0].key  # stable
