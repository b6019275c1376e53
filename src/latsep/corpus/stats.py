"""Summary of a built corpus: hours, songs by source and stem levels per split.

With `audio=True` the stems are decoded too, as a listening check in numbers: are the
stems of each song the same length, how much of each stem sounds, and is each stem in its
register (bass low, drums with the most energy above 4 kHz, other in between)?
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from latsep.corpus.corpus import Corpus
from latsep.corpus.index import SPLITS, STEMS

_FRAME = 4096
SILENCE_DB = -45.0


def corpus_stats(root: str | Path, *, audio: bool = False) -> dict:
    """Per split: songs, hours per stem (stems are aligned, so every stem has the same),
    songs and hours by source, pieces, soundfonts and per-stem RMS (dBFS) over songs; with
    `audio`, also the measured checks of `audio_checks`."""
    corpus = Corpus(root)
    result: dict = {"root": str(corpus.root), "sample_rate": corpus.sample_rate, "splits": {}}
    for split in SPLITS:
        songs = corpus.songs(split)
        if not songs:
            continue
        hours_by_source: Counter = Counter()
        for s in songs:
            hours_by_source[s.source] += s.num_samples / corpus.sample_rate / 3600.0
        summary = {
            "songs": len(songs),
            "hours_per_stem": round(sum(hours_by_source.values()), 3),
            "songs_by_source": dict(sorted(Counter(s.source for s in songs).items())),
            "hours_by_source": {k: round(v, 3) for k, v in sorted(hours_by_source.items())},
            "pieces": len({s.piece for s in songs}),
            "soundfonts": dict(sorted(Counter(s.soundfont for s in songs).items())),
            "rms_db": {stem: _summary([s.rms_db[stem] for s in songs]) for stem in STEMS},
        }
        if audio:
            summary["audio"] = audio_checks(corpus, split)
        result["splits"][split] = summary
    return result


def audio_checks(corpus: Corpus, split: str) -> dict:
    """Decoded checks over a split: songs whose stems differ in length (should be 0), and per
    stem the share of 4096-sample frames above -45 dBFS, the spectral centroid and the share
    of energy below 250 Hz and above 4 kHz (medians over songs)."""
    misaligned = 0
    measures: dict[str, dict[str, list[float]]] = {
        stem: {"active": [], "centroid_hz": [], "below_250hz": [], "above_4khz": []}
        for stem in STEMS
    }
    freqs = np.fft.rfftfreq(_FRAME, 1.0 / corpus.sample_rate)
    window = np.hanning(_FRAME).astype(np.float32)
    for song in corpus.songs(split):
        lengths = {sf.info(corpus.root / song.path / f"{stem}.flac").frames for stem in STEMS}
        if lengths != {song.num_samples}:
            misaligned += 1
            continue
        stems = corpus.load_stems(song)  # (3, L)
        usable = stems.shape[1] // _FRAME * _FRAME
        for row, stem in enumerate(STEMS):
            frames = stems[row, :usable].reshape(-1, _FRAME)  # (F, frame)
            rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
            power = (np.abs(np.fft.rfft(frames * window, axis=1)) ** 2).sum(axis=0)  # (bins,)
            total = max(float(power.sum()), 1e-20)
            m = measures[stem]
            m["active"].append(float(np.mean(rms > 10.0 ** (SILENCE_DB / 20.0))))
            m["centroid_hz"].append(float((power * freqs).sum() / total))
            m["below_250hz"].append(float(power[freqs < 250].sum() / total))
            m["above_4khz"].append(float(power[freqs > 4000].sum() / total))
    return {
        "songs_with_unequal_stems": int(misaligned),
        "median": {
            stem: {k: round(float(np.median(v)), 3) for k, v in m.items()}
            for stem, m in measures.items()
        },
        "least_active": {stem: round(min(m["active"]), 3) for stem, m in measures.items()},
    }


def _summary(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": round(float(v.mean()), 2),
        "std": round(float(v.std()), 2),
        "min": round(float(v.min()), 2),
        "max": round(float(v.max()), 2),
    }
