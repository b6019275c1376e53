"""MMA (Musical MIDI Accompaniment) grooves: the catalogue, running `mma`, and stem roles.

A groove is named by the library file that defines it; that file is the *piece* for the
train/valid/test split, so variants of one groove (`50sRock`, `50sRockSus`, ...) never
straddle two splits. The generated song `Use`s the file by absolute path, so MMA's groove
database (`mma -G`) is not needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from latsep.corpus.midi import Part, Sequence, read_midi

MMA_LIBRARY = Path("/usr/share/mma/lib")
_DEFGROOVE = re.compile(r"^\s*DefGroove\s+(\S+)", re.IGNORECASE | re.MULTILINE)
# Intros, endings and fills are a bar or two long and are not meant to loop.
_NOT_LOOPABLE = re.compile(r"intro|end|fill|break", re.IGNORECASE)
BASS_PROGRAMS = range(32, 40)  # GM acoustic ... synth bass 2
BASS_TRACK_PREFIXES = ("BASS", "WALK")


class MmaError(RuntimeError):
    """`mma` is missing or refused a generated song."""


@dataclass(frozen=True)
class Groove:
    piece: str  # "mma:<library>/<file stem>", the split unit
    path: Path
    name: str


@cache
def groove_catalogue(library: Path = MMA_LIBRARY) -> tuple[Groove, ...]:
    """Every loopable groove of the installed MMA library, in a fixed order."""
    if not library.is_dir():
        raise MmaError(f"MMA groove library not found at {library}; install the Debian package mma")
    grooves = []
    for path in sorted(library.glob("*/*.mma")):
        text = path.read_text(encoding="utf-8", errors="replace")
        piece = f"mma:{path.parent.name}/{path.stem}"
        names = dict.fromkeys(m.group(1) for m in _DEFGROOVE.finditer(text))  # ordered, unique
        grooves.extend(
            Groove(piece, path, name) for name in names if not _NOT_LOOPABLE.search(name)
        )
    return tuple(grooves)


def run_mma(groove: Groove, chords: list[str], bpm: int, seed: int) -> bytes:
    """Render `chords` (one MMA chord line per bar) with `groove` to MIDI bytes.

    MMA's own randomness (RTime, RVolume, RSkip) is seeded through `RndSeed`, and Python's
    hash seed is fixed, so the same arguments give the same bytes.
    """
    executable = shutil.which("mma")
    if executable is None:
        raise MmaError("the `mma` command is not installed (Debian package mma)")
    script = "\n".join(
        [
            f"RndSeed {seed}",
            f"Tempo {bpm}",
            f"Use {groove.path}",
            f"Groove {groove.name}",
            *chords,
            "",
        ]
    )
    with tempfile.TemporaryDirectory(prefix="latsep-mma-") as tmp:
        song, out = Path(tmp, "song.mma"), Path(tmp, "song.mid")
        song.write_text(script, encoding="utf-8")
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        result = subprocess.run(
            [executable, "-f", out.name, song.name],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not out.is_file():
            message = (result.stderr or result.stdout).strip().splitlines()
            raise MmaError(
                f"mma failed on groove {groove.name}: "
                f"{message[-1] if message else result.returncode}"
            )
        return out.read_bytes()


def split_roles(sequence: Sequence) -> dict[str, list[Part]]:
    """Assign MMA's parts to stems: drums (channel 10), bass (a Bass/Walk track played by a
    bass program or low enough to be one) and other (everything else with notes)."""
    roles: dict[str, list[Part]] = {"bass": [], "drums": [], "other": []}
    for part in sequence.parts:
        if not part.notes:
            continue
        if part.is_drum:
            roles["drums"].append(part)
        elif _is_bass_line(part):
            roles["bass"].append(part)
        else:
            roles["other"].append(part)
    return roles


def _is_bass_line(part: Part) -> bool:
    if not part.name.upper().startswith(BASS_TRACK_PREFIXES):
        return False  # MMA also names sax riffs "Bass-Sax": the program decides
    pitches = sorted(n.pitch for n in part.notes)
    return part.program in BASS_PROGRAMS or pitches[len(pitches) // 2] < 48


_USABLE: dict[Groove, bool] = {}


def nth_usable_groove(grooves: list[Groove], n: int) -> Groove | None:
    """The n-th groove (cycling) of `grooves` with drums, a bass line and accompaniment;
    None if there is none.

    About 40% of MMA's grooves lack one of them (the zoom library is drums only). Probing is
    a pure function of the groove, memoised per process, so every worker agrees on the
    sequence without sharing state.
    """
    seen = 0
    for i in range((n + 1) * len(grooves)):
        if i == len(grooves) and seen == 0:
            return None  # a whole cycle without one
        groove = grooves[i % len(grooves)]
        if is_usable(groove):
            if seen == n:
                return groove
            seen += 1
    return None


def is_usable(groove: Groove) -> bool:
    """Whether the groove plays drums, a bass line and accompaniment at one tempo."""
    if groove not in _USABLE:
        try:
            sequence, tempos, _ = read_midi(run_mma(groove, ["C", "F", "G7", "C"], 120, 0))
            _USABLE[groove] = len(tempos) == 1 and all(split_roles(sequence).values())
        except MmaError:
            _USABLE[groove] = False
    return _USABLE[groove]
