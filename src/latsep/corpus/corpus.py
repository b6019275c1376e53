"""Reading a built corpus: the song list of a split and its aligned stems.

Stems are FLAC on disk. For training, `split_pcm` gathers a split's stems once into one
int16 array, (3, total L), cached as a `.npy` under `<root>/.cache/` and memory-mapped,
so many crops per second cost no decoding and a 3-hour split costs no resident memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from latsep.corpus.index import STEMS, read_index

log = logging.getLogger(__name__)
CACHE_DIR = ".cache"


@dataclass(frozen=True)
class Song:
    """One entry of index.json."""

    song_id: str
    split: str
    source: str  # "chorale" | "mma"
    piece: str
    path: str  # directory relative to the corpus root
    num_samples: int
    soundfont: str
    tempo_bpm: float
    key: str
    kit: int
    programs: dict
    rms_db: dict
    extra: dict = field(default_factory=dict)  # everything else the index records

    @classmethod
    def from_entry(cls, entry: dict) -> Song:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(
            **{k: entry[k] for k in known}, extra={k: v for k, v in entry.items() if k not in known}
        )


@dataclass(frozen=True)
class SplitAudio:
    """A split's stems back to back: pcm (3, total L) int16 in STEMS order; song k spans
    pcm[:, offsets[k] : offsets[k] + songs[k].num_samples]."""

    songs: tuple[Song, ...]
    pcm: np.ndarray  # (3, total L) int16, usually a read-only memmap
    offsets: np.ndarray  # (songs,) int64


class Corpus:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.index = read_index(self.root)
        self.sample_rate: int = int(self.index["sample_rate"])
        self._songs = tuple(Song.from_entry(e) for e in self.index["songs"])

    def songs(self, split: str | None = None) -> list[Song]:
        """Songs of `split` (all songs if None), in index order."""
        return [s for s in self._songs if split is None or s.split == split]

    def song(self, song_id: str) -> Song:
        for song in self._songs:
            if song.song_id == song_id:
                return song
        raise KeyError(f"no song {song_id!r} in {self.root}")

    def load_stems(self, song: Song | str, stems: Sequence[str] = STEMS) -> np.ndarray:
        """Decode the song's stems: (N, L) float32 in [-1, 1], rows in the order asked."""
        song = self.song(song) if isinstance(song, str) else song
        rows = [self._read(song, stem) for stem in check_stems(stems, minimum=1)]
        return np.stack(rows).astype(np.float32) / np.float32(32768.0)

    def split_pcm(self, split: str) -> SplitAudio:
        """All stems of `split` as one int16 array, memory-mapped from the cache (built on
        first use; a read-only corpus directory falls back to memory)."""
        songs = tuple(self.songs(split))
        if not songs:
            raise ValueError(f"split {split!r} of {self.root} has no songs")
        lengths = np.array([s.num_samples for s in songs], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        digest = hashlib.sha256(
            json.dumps([s.song_id for s in songs] + lengths.tolist()).encode()
        ).hexdigest()
        path = self.root / CACHE_DIR / f"{split}-{digest[:16]}.npy"
        shape = (len(STEMS), int(lengths.sum()))
        if not path.is_file():
            try:
                self._write_cache(path, songs, offsets, shape)
            except OSError as exc:
                log.warning("cannot cache %s (%s); keeping the split in memory", path, exc)
                pcm = np.empty(shape, dtype=np.int16)
                self._gather(pcm, songs, offsets)
                return SplitAudio(songs, pcm, offsets)
        pcm = np.load(path, mmap_mode="r", allow_pickle=False)
        return SplitAudio(songs, pcm, offsets)

    def _write_cache(self, path: Path, songs, offsets, shape: tuple[int, int]) -> None:
        """Decode straight into a memory-mapped temporary .npy, then rename it into place
        (concurrent builders each write their own file; the last rename wins, both equal)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
        os.close(fd)
        try:
            pcm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16, shape=shape)
            self._gather(pcm, songs, offsets)
            pcm.flush()
            del pcm
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; other users' trainers read it too
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _gather(self, pcm: np.ndarray, songs: tuple[Song, ...], offsets: np.ndarray) -> None:
        log.info("decoding %d songs of split %s into one int16 array", len(songs), songs[0].split)
        for song, offset in zip(songs, offsets, strict=True):
            for row, stem in enumerate(STEMS):
                pcm[row, offset : offset + song.num_samples] = self._read(song, stem)

    def _read(self, song: Song, stem: str) -> np.ndarray:
        data, rate = sf.read(self.root / song.path / f"{stem}.flac", dtype="int16", always_2d=False)
        if rate != self.sample_rate or data.shape != (song.num_samples,):
            raise ValueError(
                f"{song.song_id}/{stem}.flac does not match the index "
                f"(rate {rate}, shape {data.shape})"
            )
        return data


def check_stems(stems: Sequence[str], *, minimum: int) -> tuple[str, ...]:
    stems = tuple(stems)
    unknown = [s for s in stems if s not in STEMS]
    if unknown or len(set(stems)) != len(stems) or len(stems) < minimum:
        raise ValueError(f"stems must be {minimum}+ distinct names from {STEMS}, got {stems}")
    return stems


def as_corpus(root_or_corpus: str | Path | Corpus) -> Corpus:
    return root_or_corpus if isinstance(root_or_corpus, Corpus) else Corpus(root_or_corpus)
