"""A tiny corpus, rendered once per session with the corpus builder's `tiny` preset."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from latsep.corpus.build import BuildConfig, build_corpus

    root = tmp_path_factory.mktemp("corpus") / "tiny"
    build_corpus(BuildConfig.tiny(), root)
    return root
