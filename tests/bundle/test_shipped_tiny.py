"""The shipped demo bundles (artifacts/tiny) still load with this code and serve every method.

If this fails after a change to the codec or prior architecture, regenerate them with
`latsep train bundle --config tiny --corpus <tiny corpus> --out artifacts/tiny --threads 1`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from latsep.bundle import load_bundles
from latsep.methods import METHODS

SHIPPED = Path(__file__).resolve().parents[2] / "artifacts" / "tiny"


def test_shipped_tiny_bundles_serve_all_methods() -> None:
    by_method = load_bundles(SHIPPED, device="cpu")
    assert set(by_method) == set(METHODS)
    for method, bundle in by_method.items():
        sources = bundle.source_sets(method)[0]
        assert bundle.likelihood(method, sources).num_tokens == bundle.num_tokens
        prior = bundle.prior(sources[0])
        log_probs = prior.log_probs(prior.initial_state(1))
        assert torch.allclose(log_probs.exp().sum(), torch.tensor(1.0), atol=1e-5)
    assert by_method["mlass-bp"].max_sources("mlass-bp") == 3
