"""Write a small corpus (index.json + 16-bit FLAC stems) from given float stems, with no
renderer: for tests that need corpus files but not realistic music."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from latsep.corpus import STEMS

SR = 22_050


def write_corpus(root: Path, songs: dict[str, tuple[str, dict[str, np.ndarray]]]) -> Path:
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
