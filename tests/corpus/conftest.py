"""Fixtures for the corpus tests: one tiny rendered corpus per session, and hand-made
corpora whose audio is known exactly (for the dataset API)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import corpus_support
from latsep.corpus import BuildConfig, build_corpus

SR = 22_050


def _tools_missing() -> str | None:
    """Why the renderer cannot run here (no mma, libfluidsynth or soundfonts), or None."""
    from latsep.corpus.build import check_tools

    try:
        check_tools(BuildConfig.tiny())
    except (OSError, RuntimeError, ValueError) as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> tuple[Path, dict]:
    """A few songs of a few seconds per split, built in one process."""
    missing = _tools_missing()
    if missing:
        pytest.skip(f"cannot render: {missing}")
    root = tmp_path_factory.mktemp("tiny-corpus")
    index = build_corpus(BuildConfig.tiny(seed=3), root, workers=1)
    return root, index


def _tone(
    length: int, frequency: float, db: float, *, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """A sine at `db` dBFS RMS between start and stop, zero elsewhere, shape (L,)."""
    t = np.arange(length) / SR
    amplitude = np.sqrt(2.0) * 10.0 ** (db / 20.0)
    audio = (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    mask = np.zeros(length, dtype=bool)
    mask[start:stop] = True
    return np.where(mask, audio, 0.0).astype(np.float32)


@pytest.fixture
def write_corpus():
    """`write_corpus(root, {song_id: (split, {stem: audio})}) -> root`."""
    return corpus_support.write_corpus


@pytest.fixture
def tone():
    """`tone(length, frequency, db, start=0, stop=None) -> (L,)`: a sine at `db` dBFS RMS."""
    return _tone
