"""A fixed, seeded list of evaluation chunks: the same excerpts for every model and run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latsep.corpus.corpus import Corpus, as_corpus, check_stems

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    song_id: str
    start: int  # sample offset in the song
    stems: np.ndarray  # (N, L) float32
    mixture: np.ndarray  # (L,) float32, stems.mean(0)


def evaluation_chunks(
    root_or_corpus: str | Path | Corpus,
    stems: Sequence[str],
    *,
    split: str = "test",
    seconds: float = 3.0,
    count: int = 50,
    seed: int = 0,
    silence_db: float = -45.0,
) -> list[Chunk]:
    """`count` non-overlapping chunks where every requested stem is audible (RMS above
    `silence_db` dBFS), spread over as many songs as possible, sorted by (song, start).

    Chunks lie on a grid of `seconds` from each song's start; songs are visited in a
    seeded order, one chunk per song per round, so few songs cannot crowd out the rest.
    Fewer than `count` are returned (with a warning) when the split has fewer.
    """
    corpus = as_corpus(root_or_corpus)
    stems = check_stems(stems, minimum=1)
    length = round(seconds * corpus.sample_rate)
    floor = 10.0 ** (silence_db / 20.0)
    rng = np.random.default_rng(seed)
    candidates: dict[str, list[tuple[int, np.ndarray]]] = {}
    for song in sorted(corpus.songs(split), key=lambda s: s.song_id):
        audio = corpus.load_stems(song, stems)  # (N, L)
        usable = []
        for start in range(0, song.num_samples - length + 1, length):
            chunk = audio[:, start : start + length]  # (N, L)
            if np.all(np.sqrt(np.mean(chunk.astype(np.float64) ** 2, axis=1)) > floor):
                usable.append((start, chunk.copy()))
        if usable:
            candidates[song.song_id] = [usable[i] for i in rng.permutation(len(usable))]
    chosen: list[Chunk] = []
    order = [sorted(candidates)[i] for i in rng.permutation(len(candidates))]
    while len(chosen) < count and any(candidates[s] for s in order):
        for song_id in order:
            if candidates[song_id] and len(chosen) < count:
                start, chunk = candidates[song_id].pop()
                chosen.append(Chunk(song_id, start, chunk, chunk.mean(axis=0)))
    if len(chosen) < count:
        log.warning(
            "only %d chunks of %s s with %s audible in split %s", len(chosen), seconds, stems, split
        )
    return sorted(chosen, key=lambda c: (c.song_id, c.start))
