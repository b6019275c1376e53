"""Options a request leaves out take the serving bundle's defaults for the method, else the
global ones; the result records what ran, and the worker publishes the defaults."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from worker_support import ToyBundle, mixture

from latsep.jobs import JobStore, SeparationOptions
from latsep.settings import Settings
from latsep.worker import pipeline
from latsep.worker.routing import Engine, LoadedBundle

SHORT = 0.25
TUNED = {"lass": {"num_candidates": 3, "likelihood_weight": 4.0, "top_k": 5}}


def wav(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, 22050, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def engine_with(defaults: dict | None = None, sources=("bass", "drums")) -> Engine:
    bundle = ToyBundle(sources=sources, defaults=defaults)
    return Engine([LoadedBundle("toy", Path("/nonexistent/toy"), bundle)], "cpu")


def run(engine: Engine, method: str = "lass", sources=None, **options):
    bass, drums = mixture(SHORT)
    asked = SeparationOptions(seed=5, **options)
    return pipeline.run(engine, method, sources, wav(bass + drums), asked, default_num_candidates=2)


def test_resolution_order_request_then_bundle_then_global() -> None:
    asked = SeparationOptions(seed=1, temperature=0.5)
    used = asked.resolve(TUNED["lass"], default_num_candidates=2)
    assert used.model_dump() == {
        "num_candidates": 3,
        "search": "sample",
        "temperature": 0.5,
        "top_k": 5,
        "likelihood_weight": 4.0,
        "seed": 1,
        "consistency": "ensemble",
    }
    bare = SeparationOptions(seed=1).resolve({}, default_num_candidates=7)
    assert (bare.num_candidates, bare.temperature, bare.top_k, bare.likelihood_weight) == (
        7, 1.0, None, 1.0,
    )  # fmt: skip
    # A bundle's top_k null is a default too ("no top-k"), not "absent".
    assert SeparationOptions(seed=1).resolve({"top_k": None}, 2).top_k is None
    assert SeparationOptions(seed=1, top_k=3).resolve({"top_k": None}, 2).top_k == 3


def test_bundle_defaults_reach_the_engine() -> None:
    tuned = run(engine_with(TUNED))
    assert tuned.result.options is not None
    assert tuned.result.options.num_candidates == 3 and len(tuned.result.candidate_consistency) == 3
    assert tuned.result.options.likelihood_weight == 4.0 and tuned.result.options.top_k == 5
    # The same options asked for explicitly from a bundle without defaults: same stems.
    explicit = run(engine_with(), num_candidates=3, likelihood_weight=4.0, top_k=5)
    for source in tuned.stems:
        np.testing.assert_array_equal(tuned.stems[source], explicit.stems[source])
    # The weight changes the draw (so it really was passed on, not dropped).
    plain = run(engine_with(), num_candidates=3, likelihood_weight=1.0, top_k=5)
    assert any(not np.array_equal(tuned.stems[s], plain.stems[s]) for s in tuned.stems), (
        "likelihood_weight had no effect"
    )


def test_the_request_overrides_the_bundle() -> None:
    out = run(engine_with(TUNED), num_candidates=1, likelihood_weight=1.0)
    assert out.result.options is not None
    assert out.result.options.num_candidates == 1 and out.result.options.likelihood_weight == 1.0
    assert out.result.options.top_k == 5  # not asked for: still the bundle's


def test_global_default_without_bundle_defaults() -> None:
    out = run(engine_with(), method="mlass-pe")
    assert out.result.options is not None
    assert out.result.options.num_candidates == 2 and out.result.options.likelihood_weight == 1.0


def test_mlass_bp_with_three_sources_refuses_a_weight() -> None:
    engine = engine_with(sources=("bass", "drums", "piano"))
    with pytest.raises(ValueError, match="likelihood_weight must be 1 for mlass-bp"):
        run(engine, method="mlass-bp", sources=["bass", "drums", "piano"], likelihood_weight=2.0)


def test_capabilities_publish_the_defaults(store: JobStore, settings: Settings) -> None:
    import time

    from latsep.jobs import WorkerInfo
    from latsep.worker.runner import Heartbeat

    engine = engine_with(TUNED)
    info = WorkerInfo(name="defaults-1", hostname="h", pid=1, device="cpu", queues=[],
                      bundles=engine.capabilities(), started_at=time.time())  # fmt: skip
    Heartbeat(store, info, settings).beat()
    (registered,) = store.live_workers()
    # Through Redis and back, per source count; methods without defaults are left out.
    assert registered.bundles[0].separation_defaults == {"lass": {"2": TUNED["lass"]}}


def test_defaults_per_source_count() -> None:
    """A method's `by_sources` override applies to that many sources only, and is
    published per source count."""
    per_count = {
        "mlass-bp": {
            "num_candidates": 3,
            "likelihood_weight": 1.0,
            "by_sources": {"2": {"likelihood_weight": 2.0, "num_candidates": 2}},
        }
    }
    engine = engine_with(per_count, sources=("bass", "drums", "piano"))
    three = run(engine, method="mlass-bp", sources=["bass", "drums", "piano"])
    assert three.result.options is not None
    assert three.result.options.likelihood_weight == 1.0
    assert three.result.options.num_candidates == 3
    two = run(engine, method="mlass-bp", sources=["bass", "drums"])
    assert two.result.options is not None
    assert two.result.options.likelihood_weight == 2.0 and two.result.options.num_candidates == 2
    (info,) = engine.capabilities()
    assert info.separation_defaults == {
        "mlass-bp": {
            "2": {"num_candidates": 2, "likelihood_weight": 2.0},
            "3": {"num_candidates": 3, "likelihood_weight": 1.0},
        }
    }
