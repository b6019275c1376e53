"""Stems of a built corpus in memory, and seeded random crops with random stem gains.

Reads the corpus index (index.json: songs with `split`, `path`, `num_samples`;
`<path>/<stem>.flac`). Audio is kept as int16 (a 3 h corpus of three stems is
~1.4 GB). Every crop of a batch comes from one song position shared by its
stems, so stems are sample-aligned, and each stem gets its own random gain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from latsep.models.codec import SAMPLE_RATE


@dataclass(frozen=True)
class Song:
    song_id: str
    stems: dict[str, np.ndarray]  # stem → int16 (L,)

    @property
    def num_samples(self) -> int:
        return min(a.shape[0] for a in self.stems.values())


class StemStore:
    """The songs of one split, for a chosen set of stems."""

    def __init__(self, root: str | Path, split: str, stems: tuple[str, ...]) -> None:
        self.root = Path(root)
        index = read_corpus_index(self.root)
        if int(index.get("sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
            raise ValueError(f"corpus sample rate {index['sample_rate']} != {SAMPLE_RATE}")
        missing = set(stems) - set(index.get("stems", stems))
        if missing:
            raise ValueError(f"corpus has no stems {sorted(missing)}")
        self.split = split
        self.stems = tuple(stems)
        self.songs: list[Song] = []
        for entry in index["songs"]:
            if entry["split"] != split:
                continue
            audio = {s: _read_int16(self.root / entry["path"] / f"{s}.flac") for s in stems}
            self.songs.append(Song(entry["song_id"], audio))
        if not self.songs:
            raise ValueError(f"corpus {self.root} has no songs in split {split!r}")

    def subset(self, stems: tuple[str, ...]) -> StemStore:
        """The same songs with only `stems`, in that order (no audio is copied)."""
        missing = set(stems) - set(self.stems)
        if missing:
            raise ValueError(f"store has no stems {sorted(missing)}")
        view = object.__new__(StemStore)
        view.root, view.split, view.stems = self.root, self.split, tuple(stems)
        view.songs = [Song(s.song_id, {k: s.stems[k] for k in stems}) for s in self.songs]
        return view

    @property
    def seconds(self) -> float:
        return sum(s.num_samples for s in self.songs) / SAMPLE_RATE

    def crops(
        self,
        rng: np.random.Generator,
        batch_size: int,
        length: int,
        gain_db: tuple[float, float] = (0.0, 0.0),
    ) -> np.ndarray:
        """(B, N, L) float32 crops; songs drawn in proportion to their length."""
        weights = np.array([max(s.num_samples - length, 1) for s in self.songs], dtype=np.float64)
        picks = rng.choice(len(self.songs), size=batch_size, p=weights / weights.sum())
        out = np.zeros((batch_size, len(self.stems), length), dtype=np.float32)
        for b, song_index in enumerate(picks):
            song = self.songs[song_index]
            start = int(rng.integers(0, max(song.num_samples - length, 0) + 1))
            for n, stem in enumerate(self.stems):
                piece = song.stems[stem][start : start + length]
                out[b, n, : piece.shape[0]] = piece / 32768.0
        gains = 10.0 ** (rng.uniform(*gain_db, size=(batch_size, len(self.stems), 1)) / 20.0)
        return out * gains.astype(np.float32)


def read_corpus_index(root: Path) -> dict:
    path = Path(root) / "index.json"
    if not path.is_file():
        raise FileNotFoundError(f"no corpus index at {path}; build one with `latsep corpus build`")
    return json.loads(path.read_text(encoding="utf-8"))


def corpus_hash(root: str | Path) -> str:
    """sha256 of the corpus index.json: the provenance of a model trained on it."""
    return hashlib.sha256((Path(root) / "index.json").read_bytes()).hexdigest()


def _read_int16(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: sample rate {rate} != {SAMPLE_RATE}")
    return data.mean(axis=1).astype(np.int16) if data.shape[1] > 1 else data[:, 0].copy()
