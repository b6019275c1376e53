"""A tiny corpus, rendered once per session with the corpus builder's `tiny` preset.

Tiny models: one torch thread is as fast, and spin-waiting threads on a shared 2-core
machine made the pipeline test ~10× slower (measured 22 s vs 4 min under load).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from latsep.models.data.build import BuildConfig, build_corpus

    root = tmp_path_factory.mktemp("corpus") / "tiny"
    build_corpus(BuildConfig.tiny(), root)
    return root
