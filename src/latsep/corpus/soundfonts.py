"""General MIDI soundfonts on this machine and the drum kits each one holds.

The kits are read from the soundfont's own preset table (RIFF `pdta/phdr`), so a song
never asks a soundfont for a kit it lacks (FluidSynth would then play silence or a
substitute, and the index would lie about the kit).
"""

from __future__ import annotations

import struct
from functools import cache
from pathlib import Path

# Debian's GM soundfonts: fluid-soundfont-gm, timgm6mb-soundfont, musescore-general-soundfont-small.
SOUNDFONTS: dict[str, Path] = {
    "FluidR3_GM": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    "TimGM6mb": Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    "MuseScore_General_Lite": Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
    # Never in the corpus: for held-out evaluation sets (`latsep corpus build
    # --heldout-soundfont GMbank`); csound-soundfont.
    "GMbank": Path("/usr/share/sounds/sf2/sf_GMbank.sf2"),
}
DRUM_BANK = 128  # GM percussion presets live in bank 128
_PHDR_RECORD = struct.Struct(
    "<20sHHHIII"
)  # name, preset, bank, bag index, library, genre, morphology


def soundfont_path(name: str) -> Path:
    """The file of a known soundfont, or a clear error naming the Debian package to install."""
    if name not in SOUNDFONTS:
        raise ValueError(f"unknown soundfont {name!r}; known: {', '.join(SOUNDFONTS)}")
    path = SOUNDFONTS[name]
    if not path.is_file():
        raise FileNotFoundError(
            f"soundfont {name} not found at {path}; install fluid-soundfont-gm, "
            "timgm6mb-soundfont, musescore-general-soundfont-small and csound-soundfont"
        )
    return path


@cache
def presets(path: Path) -> frozenset[tuple[int, int]]:
    """All (bank, program) pairs that the soundfont defines."""
    with open(path, "rb") as f:
        riff, _size, kind = struct.unpack("<4sI4s", f.read(12))
        if riff != b"RIFF" or kind != b"sfbk":
            raise ValueError(f"{path} is not a SoundFont (RIFF sfbk) file")
        while header := f.read(12):
            if header[:1] == b"\0":  # a pad byte after an odd-sized chunk (some writers omit it)
                header = header[1:] + f.read(1)
            chunk, size, list_kind = struct.unpack("<4sI4s", header)
            if chunk == b"LIST" and list_kind == b"pdta":
                return _read_phdr(f, size - 4)
            f.seek(size - 4, 1)  # skip the chunk (sample data is most of the file)
    raise ValueError(f"{path} has no preset table")


def drum_kits(path: Path) -> tuple[int, ...]:
    """GM drum kit programs (bank 128) the soundfont holds, ascending."""
    return tuple(sorted(program for bank, program in presets(path) if bank == DRUM_BANK))


def _read_phdr(f, length: int) -> frozenset[tuple[int, int]]:
    end = f.tell() + length
    while f.tell() < end:
        chunk, size = struct.unpack("<4sI", f.read(8))
        if chunk != b"phdr":
            f.seek(size + (size & 1), 1)
            continue
        data = f.read(size)
        records = [
            _PHDR_RECORD.unpack_from(data, offset)
            for offset in range(0, size - _PHDR_RECORD.size, _PHDR_RECORD.size)  # last: EOP
        ]
        return frozenset((bank, preset) for _name, preset, bank, *_ in records)
    raise ValueError("preset table without phdr chunk")
