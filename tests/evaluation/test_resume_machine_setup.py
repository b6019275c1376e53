"""Resumed bench runs never report another machine setup's timings: the method rows' resume
key holds torch threads and device; the reference rows (no timings) stay shared."""

from __future__ import annotations

import torch
from bench_fakes import FakeSeparate

from latsep.evaluation import BenchConfig, run_bench
from latsep.evaluation.cases import BASELINE, CEILING, METHOD, Case
from latsep.evaluation.runner import _keyed_by_setup
from latsep.models.metrics import si_sdr


def test_resume_with_other_threads_re_times_the_separation(
    tiny_bundles, corpus, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("latsep.evaluation.scoring.bss_sdr", lambda ref, est, sr: si_sdr(ref, est))
    common = {"bundles": tiny_bundles, "corpus": corpus, "out": tmp_path / "out", "chunks": 1,
              "seconds": 1.0, "methods": ("lass",), "sources": (2,)}  # fmt: skip
    try:
        run_bench(BenchConfig(threads=1, **common), separate=FakeSeparate(delay=0.5))
        fast = FakeSeparate(delay=0.0)
        results = run_bench(BenchConfig(threads=2, **common), separate=fast)
    finally:
        torch.set_num_threads(1)
    assert results["machine"]["torch_threads"] == 2
    (row,) = [r for r in results["rows"] if r["kind"] == METHOD]
    # The 2-thread run separated the chunk again (its stems also draw the spectrogram) and
    # reports its own ~0 s, not the 1-thread run's 0.5 s.
    assert len(fast.calls) == 1
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
