"""Random aligned training crops from a corpus split, with their mixture.

A crop position is drawn uniformly over all valid (song, start) pairs of the split, so
long songs are not under-sampled; crops where a requested stem is (near) silent are
redrawn, since a separator cannot learn a source that is not there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latsep.corpus.corpus import Corpus, as_corpus, check_stems
from latsep.corpus.index import STEMS


@dataclass(frozen=True)
class Crop:
    stems: np.ndarray  # (N, L) float32
    mixture: np.ndarray  # (L,) float32, stems.mean(0)
    song_id: str
    start: int  # sample offset in the song


class CropSampler:
    """Random aligned crops of `seconds` from `split`, rows in the order of `stems`.

    `random_gain_db=(lo, hi)` scales each stem of each crop by a uniform dB gain before
    mixing (augmentation; off by default). The silence test uses the unscaled audio.
    """

    def __init__(
        self,
        root_or_corpus: str | Path | Corpus,
        split: str,
        stems: Sequence[str],
        seconds: float,
        *,
        seed: int,
        silence_db: float = -45.0,
        random_gain_db: tuple[float, float] | None = None,
        max_tries: int = 1000,
    ) -> None:
        self.corpus = as_corpus(root_or_corpus)
        self.stems = check_stems(stems, minimum=1)
        self.length = round(seconds * self.corpus.sample_rate)
        if self.length <= 0:
            raise ValueError("crop length must be positive")
        self.split = split
        self.audio = self.corpus.split_pcm(split)
        self.rows = [STEMS.index(s) for s in self.stems]
        lengths = np.array([s.num_samples for s in self.audio.songs], dtype=np.int64)
        starts = np.maximum(lengths - self.length + 1, 0)  # valid start positions per song
        if starts.sum() == 0:
            raise ValueError(f"no song of split {split!r} is {seconds} s long")
        self._cumulative = np.cumsum(starts)  # (songs,)
        # mean square of a crop at silence_db, in int16 units squared
        self._floor = (10.0 ** (silence_db / 20.0) * 32768.0) ** 2
        self.random_gain_db = random_gain_db
        self.max_tries = max_tries
        self.rng = np.random.default_rng(seed)

    def __getstate__(self) -> dict:
        # Data-loader workers get a copy by pickling: send the path, not gigabytes of audio.
        state = dict(self.__dict__)
        state["audio"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.audio = self.corpus.split_pcm(self.split)  # the cached memmap, reopened

    def sample(self) -> Crop:
        for _ in range(self.max_tries):
            position = int(self.rng.integers(self._cumulative[-1]))
            k = int(np.searchsorted(self._cumulative, position, side="right"))
            start = position - (int(self._cumulative[k - 1]) if k else 0)
            begin = int(self.audio.offsets[k]) + start
            pcm = self.audio.pcm[self.rows, begin : begin + self.length]  # (N, L) int16
            x = pcm.astype(np.float32)
            power = np.einsum("nl,nl->n", x, x) / self.length  # (N,)
            if np.all(power > self._floor):
                return self._crop(x / np.float32(32768.0), self.audio.songs[k].song_id, start)
        raise RuntimeError(
            f"no crop with every stem of {self.stems} audible in {self.max_tries} tries"
        )

    def batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, N, L) stems and (B, L) mixtures."""
        crops = [self.sample() for _ in range(batch_size)]
        return np.stack([c.stems for c in crops]), np.stack([c.mixture for c in crops])

    def _crop(self, stems: np.ndarray, song_id: str, start: int) -> Crop:
        if self.random_gain_db is not None:
            gains_db = self.rng.uniform(*self.random_gain_db, size=(len(self.rows), 1))
            stems = (stems * (10.0 ** (gains_db / 20.0))).astype(np.float32)
        return Crop(stems, stems.mean(axis=0), song_id, start)
