"""The bundles shipped under artifacts/ load in a worker engine and serve every method they
announce (a smoke test on a quarter second; skipped while no bundle is shipped)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from worker_support import mixture

from latsep.jobs import SeparationOptions
from latsep.settings import Settings
from latsep.worker import pipeline
from latsep.worker.routing import Engine

SHIPPED = Settings(bundles="").bundle_paths()


@pytest.mark.skipif(not SHIPPED, reason="no bundle shipped under artifacts/ yet")
def test_shipped_bundles_serve_their_methods() -> None:
    torch.set_num_threads(1)
    engine = Engine.load(SHIPPED, device="cpu")
    caps = engine.capabilities()
    assert {m for b in caps for m in b.methods} == set(engine.methods())
    bass, drums = mixture(0.25)
    buffer = io.BytesIO()
    sf.write(buffer, bass + drums, 22050, format="WAV", subtype="FLOAT")
    options = SeparationOptions(num_candidates=1, seed=0)
    for loaded in engine.bundles:
        for method in loaded.bundle.methods:
            for source_set in loaded.source_sets(method):
                sources = list(reversed(source_set))  # any order; stems come back in it
                out = pipeline.run(engine, method, sources, buffer.getvalue(), options)
                assert list(out.stems) == sources
                total = sum(out.stems.values())
                np.testing.assert_allclose(total, bass + drums, atol=1e-4, err_msg=method)


@pytest.mark.skipif(not SHIPPED, reason="no bundle shipped under artifacts/ yet")
def test_shipped_defaults_are_the_configs() -> None:
    """The tuned defaults (and backoff) in the shipped manifests are those the training
    config declares, so `latsep train bundle --config default` reproduces them (they are
    edited with `latsep bundle set-defaults` / `set-likelihood` after tuning; the config
    must follow)."""
    import json

    from latsep.training import load_config

    declared = {b.name: b for b in load_config("default").bundles}
    for path in SHIPPED:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        spec = declared.get(manifest.get("name"))
        if spec is not None:
            assert manifest["separation_defaults"] == spec.defaults, path
            # the count tables' backoff strength likewise (`latsep bundle set-likelihood`)
            assert float(manifest["likelihood"].get("backoff") or 0.0) == spec.backoff, path
            # and the σ of the latent terms (`latsep bundle set-likelihood --latent-sigma`)
            assert manifest["likelihood"].get("latent_sigma", {}) == spec.latent_sigma, path
