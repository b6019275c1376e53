"""Fixtures for the corpus tests: one tiny rendered corpus per session, and hand-made
corpora whose audio is known exactly (for the dataset API)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latsep.models.data import STEMS, BuildConfig, build_corpus

SR = 22_050


def _tools_missing() -> str | None:
    """Why the renderer cannot run here (no mma, libfluidsynth or soundfonts), or None."""
    from latsep.models.data.build import check_tools

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


def _write_corpus(root: Path, songs: dict[str, tuple[str, dict[str, np.ndarray]]]) -> Path:
    """A corpus from given float stems: {song_id: (split, {stem: (L,) float})}."""
    entries = []
    for song_id, (split, stems) in songs.items():
        lengths = {a.shape[0] for a in stems.values()}
        assert len(lengths) == 1 and set(stems) == set(STEMS)
        folder = root / split / song_id
        folder.mkdir(parents=True)
        for stem, audio in stems.items():
            pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
            sf.write(folder / f"{stem}.flac", pcm, SR, format="FLAC", subtype="PCM_16")
        entries.append(
            {
                "song_id": song_id,
                "split": split,
                "source": "synthetic",
                "piece": song_id,
                "path": f"{split}/{song_id}",
                "num_samples": lengths.pop(),
                "soundfont": "none",
                "tempo_bpm": 120.0,
                "key": "C major",
                "kit": 0,
                "programs": {"bass": [33], "other": [0]},
                "rms_db": {stem: -20.0 for stem in STEMS},
            }
        )
    index = {
        "format": "latsep-corpus",
        "version": 1,
        "sample_rate": SR,
        "stems": list(STEMS),
        "songs": entries,
    }
    (root / "index.json").write_text(json.dumps(index))
    return root


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
    return _write_corpus


@pytest.fixture
def tone():
    """`tone(length, frequency, db, start=0, stop=None) -> (L,)`: a sine at `db` dBFS RMS."""
    return _tone
