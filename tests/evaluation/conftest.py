"""A synthetic corpus whose test split has every stem audible everywhere (fast, no renderer),
and the shipped tiny bundles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corpus_support import write_corpus as write_stems

SR = 22_050
TINY = Path(__file__).resolve().parents[2] / "artifacts" / "tiny"


def _song(rng: np.random.Generator, seconds: float) -> dict[str, np.ndarray]:
    """Bass and other as sines, drums as decaying noise bursts; all about -20 dBFS."""
    t = np.arange(round(seconds * SR)) / SR
    bursts = np.exp(-((t % 0.25) * 30.0))
    return {
        "bass": 0.14 * np.sin(2 * np.pi * rng.uniform(50, 90) * t),
        "drums": 0.2 * bursts * rng.standard_normal(t.size),
        "other": 0.1 * np.sin(2 * np.pi * rng.uniform(300, 600) * t),
    }


def write_corpus(root: Path, songs_per_split: dict[str, int], seconds: float) -> Path:
    rng = np.random.default_rng(7)
    songs = {
        f"{split}-{k:05d}": (split, _song(rng, seconds))
        for split, count in songs_per_split.items()
        for k in range(count)
    }
    return write_stems(root, songs)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 2-second test songs (4 one-second chunks per source set) and one train song."""
    return write_corpus(tmp_path_factory.mktemp("bench-corpus"), {"train": 1, "test": 2}, 2.0)


@pytest.fixture(scope="session")
def tiny_bundles() -> Path:
    if not (TINY / "plain" / "manifest.json").is_file():
        pytest.skip("the tiny bundles are not shipped in artifacts/tiny")
    return TINY
