"""Bach's four-part chorales from music21's corpus, as note parts on the MIDI tick grid.

A chorale is a *piece* for the split. Soprano, alto and tenor become the `other` stem,
the bass voice the `bass` stem (moved an octave down into bass-guitar range by the
recipe). Ties are merged so a tied note is one note, not a re-attack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from latsep.corpus.midi import TICKS_PER_BEAT, Note, Part

CHORALE_SUFFIXES = (".mxl", ".xml", ".krn")  # scores; `.rntxt` files are harmonic analyses
VOICES = ("soprano", "alto", "tenor", "bass")


class NotAChorale(ValueError):
    """The score is not four single-voice parts."""


@dataclass(frozen=True)
class ChoraleSource:
    piece: str  # "bach/<file stem>", the split unit
    path: Path


@dataclass(frozen=True)
class Chorale:
    voices: tuple[Part, ...]  # soprano, alto, tenor, bass; channel 0 and program 0 until the recipe
    bar_ticks: int  # one bar of the time signature
    pickup_ticks: int  # length of the anacrusis before bar 1 (0 if none)
    tonic: str  # e.g. "A"
    mode: str  # "major" / "minor"


@cache
def chorale_catalogue() -> tuple[ChoraleSource, ...]:
    """Bach scores in music21's corpus, sorted by name. Whether one really has four
    voices is only known after parsing (`load_chorale` raises NotAChorale)."""
    from music21 import corpus

    paths = sorted({Path(p) for p in corpus.getComposer("bach")}, key=lambda p: p.name)
    return tuple(
        ChoraleSource(f"bach/{p.name.removesuffix(p.suffix)}", p)
        for p in paths
        if p.suffix in CHORALE_SUFFIXES
    )


def load_chorale(source: ChoraleSource) -> Chorale:
    from music21 import converter, meter

    score = converter.parse(source.path, forceSource=True)
    parts = _satb(list(score.parts), source.piece)
    voices = []
    for name, part in zip(VOICES, parts, strict=True):
        notes = []
        for element in part.stripTies().flatten().notes:
            start = _ticks(element.offset)
            end = start + _ticks(element.quarterLength)
            if end <= start:
                continue  # grace notes
            velocity = 80
            notes.extend(Note(start, end, p.midi, velocity) for p in element.pitches)
        if not notes:
            raise NotAChorale(f"{source.piece}: the {name} part has no notes")
        voices.append(Part(name, 0, 0, tuple(sorted(notes, key=lambda n: (n.start, n.pitch)))))
    signatures = list(parts[0].recurse().getElementsByClass(meter.TimeSignature))
    bar = _ticks(signatures[0].barDuration.quarterLength) if signatures else 4 * TICKS_PER_BEAT
    measures = list(parts[0].getElementsByClass("Measure"))
    first_full = next((m for m in measures if m.number == 1), None)
    pickup = _ticks(first_full.offset) if first_full is not None else 0
    key = score.analyze("key")
    return Chorale(tuple(voices), bar, pickup % bar, key.tonic.name, key.mode)


def _satb(parts: list, piece: str) -> list:
    """The soprano, alto, tenor and bass parts: by name when the score also has instruments
    (horns, oboes, timpani doubling the chorale), else the four parts in score order."""
    by_name = {(p.partName or "").strip().lower(): p for p in parts}
    if all(v in by_name for v in VOICES):
        return [by_name[v] for v in VOICES]
    if len(parts) == len(VOICES):
        return parts
    raise NotAChorale(f"{piece} has {len(parts)} parts and no soprano/alto/tenor/bass names")


def _ticks(quarter_length) -> int:
    # music21 offsets are exact fractions; the grid of 192 per quarter holds all chorale values.
    value = float(quarter_length) * TICKS_PER_BEAT
    return math.floor(value + 0.5)
