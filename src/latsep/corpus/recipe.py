"""The random choices that turn a chorale or an MMA groove into one song's three stems.

Every choice is drawn from the song's own numpy Generator, so a song depends only on
(seed, split, song index) and the installed music21/MMA/soundfonts, never on which worker
built it or in what order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from latsep.corpus.chorales import Chorale
from latsep.corpus.grooves import BASS_PROGRAMS, Groove, MmaError, run_mma, split_roles
from latsep.corpus.midi import (
    DRUM_CHANNEL,
    TICKS_PER_BEAT,
    Note,
    Part,
    read_midi,
    shift_part,
    truncate_part,
)

# GM drum kits by program (bank 128); the orchestral kit (48) is not a groove kit.
GM_KITS = {
    0: "standard",
    8: "room",
    16: "power",
    24: "electronic",
    25: "tr-808",
    32: "jazz",
    40: "brush",
}
OTHER_PROGRAMS = {
    "piano": (0, 1, 2, 4, 5, 6),
    "organ": (16, 17, 19, 20),
    "guitar": (24, 25, 26, 27, 29),
    "strings": (40, 41, 42, 48, 49, 50),
    "brass": (56, 57, 60, 61),
    "reed": (64, 65, 66, 68, 71),
    "pipe": (73, 74),
    "pad": (52, 88, 89),
}
NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
# Chord progressions as (semitones above the tonic, MMA chord type), one chord per bar.
PROGRESSIONS = {
    "major": (
        ((0, ""), (7, ""), (9, "m"), (5, "")),
        ((0, ""), (5, ""), (7, ""), (0, "")),
        ((0, ""), (9, "m"), (2, "m7"), (7, "7")),
        ((2, "m7"), (7, "7"), (0, "M7"), (0, "M7")),
        (
            (0, "7"),
            (5, "7"),
            (0, "7"),
            (0, "7"),
            (5, "7"),
            (5, "7"),
            (0, "7"),
            (0, "7"),
            (7, "7"),
            (5, "7"),
            (0, "7"),
            (7, "7"),
        ),
        ((9, "m"), (5, ""), (0, ""), (7, "")),
        ((0, ""), (4, "m"), (5, ""), (7, "7")),
    ),
    "minor": (
        ((0, "m"), (8, ""), (3, ""), (10, "")),
        ((0, "m"), (5, "m"), (7, "7"), (0, "m")),
        ((0, "m7"), (5, "m7"), (0, "m7"), (7, "7")),
        ((0, "m"), (10, ""), (8, ""), (7, "7")),
        ((2, "m7b5"), (7, "7"), (0, "m"), (0, "m")),
    ),
}


@dataclass(frozen=True)
class SongParts:
    """A song's parts per stem, on one tick grid with one tempo."""

    stems: dict[str, tuple[Part, ...]]
    tempo: int  # microseconds per quarter note
    ticks_per_beat: int
    meta: dict  # what the index records: tempo_bpm, key, programs, kit, groove, ...

    @property
    def end_tick(self) -> int:
        return max(p.end for parts in self.stems.values() for p in parts)


class Rejected(Exception):
    """This song cannot be made from its piece (e.g. a groove without a bass line)."""


def chorale_song(
    chorale: Chorale,
    grooves: list[Groove],
    kits: tuple[int, ...],
    rng: np.random.Generator,
    *,
    max_drum_tries: int = 8,
) -> SongParts:
    """Chorale bass voice -> bass, upper voices -> other, drums from a groove of the same split."""
    bpm = int(rng.integers(60, 111))  # MMA keeps whole beats per minute
    transpose = int(rng.integers(-5, 7))
    bass_program = int(rng.choice(BASS_PROGRAMS))
    other_programs = _chorale_programs(rng)
    kit = int(rng.choice(kits))
    soprano, alto, tenor, bass = (
        _humanise(shift_part(v, 0, transpose), rng, base=rng.uniform(60, 105))
        for v in chorale.voices
    )
    bass = _into_bass_range(bass)
    upper = tuple(
        replace(v, channel=i, program=p)
        for i, (v, p) in enumerate(zip((soprano, alto, tenor), other_programs, strict=True))
    )
    music_end = max(p.end for p in (*upper, bass))
    # The groove's bar lines must fall on the chorale's: play one bar more and drop what
    # comes before the pickup, so the groove's bar 2 starts with the chorale's bar 1.
    lead_in = chorale.bar_ticks - chorale.pickup_ticks if chorale.pickup_ticks else 0
    bars = math.ceil((music_end + lead_in) / chorale.bar_ticks)
    drums, groove, tempo = None, None, None
    for index in rng.permutation(len(grooves))[:max_drum_tries]:
        candidate = grooves[int(index)]
        try:
            midi = run_mma(candidate, ["C"] * bars, bpm, int(rng.integers(2**31)))
        except MmaError:
            continue
        sequence, tempos, meter = read_midi(midi)
        kit_parts = _rescale(split_roles(sequence)["drums"], sequence.ticks_per_beat)
        if len(tempos) > 1 or not kit_parts:
            continue
        bar = TICKS_PER_BEAT * 4 * meter[0] // meter[1]
        if drums is None or bar == chorale.bar_ticks:  # prefer the chorale's metre
            drums, groove, tempo = kit_parts, candidate, tempos[0]
        if bar == chorale.bar_ticks:
            break
    if drums is None:
        raise Rejected(f"no groove with drums among {max_drum_tries} tries")
    drums = tuple(
        _scale_velocity(
            replace(p, channel=DRUM_CHANNEL, program=kit), float(rng.uniform(0.7, 1.15))
        )
        for p in drums
    )
    drums = tuple(truncate_part(shift_part(p, -lead_in), music_end) for p in drums)
    meta = {
        "source": "chorale",
        "tempo_bpm": round(60e6 / tempo, 3),
        "key": f"{_transposed(chorale.tonic, transpose)} {chorale.mode}",
        "transpose": transpose,
        "programs": {"bass": [bass_program], "other": list(other_programs)},
        "kit": kit,
        "groove": groove.name,
        "groove_piece": groove.piece,
    }
    stems = {"bass": (replace(bass, program=bass_program),), "drums": drums, "other": upper}
    return SongParts(stems, tempo, TICKS_PER_BEAT, meta)


def mma_song(
    groove: Groove, kits: tuple[int, ...], rng: np.random.Generator, *, song_seconds: float
) -> SongParts:
    """A random progression played by `groove`: its bass, drums and accompaniment tracks."""
    bpm = int(rng.integers(70, 151))
    mode = "major" if rng.random() < 0.6 else "minor"
    tonic = int(rng.integers(12))
    progression = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    bars = max(2, round(song_seconds * bpm / 60.0 / 4.0))
    chords = [_chord_name(tonic, *progression[i % len(progression)]) for i in range(bars)]
    sequence, tempos, _meter = read_midi(run_mma(groove, chords, bpm, int(rng.integers(2**31))))
    if len(tempos) > 1:
        raise Rejected(f"groove {groove.name} changes tempo")
    roles = {
        stem: _rescale(parts, sequence.ticks_per_beat)
        for stem, parts in split_roles(sequence).items()
    }
    missing = [stem for stem, parts in roles.items() if not parts]
    if missing:
        raise Rejected(f"groove {groove.name} has no {'/'.join(missing)} track")
    bass_program = int(rng.choice(BASS_PROGRAMS))
    kit = int(rng.choice(kits))
    families = list(OTHER_PROGRAMS.values())
    other = []
    for part in roles["other"]:  # keep MMA's choice half the time: it suits the groove
        program = (
            part.program
            if rng.random() < 0.5
            else int(rng.choice(families[int(rng.integers(len(families)))]))
        )
        other.append(
            _scale_velocity(replace(part, program=program), float(rng.uniform(0.75, 1.15)))
        )
    stems = {
        "bass": tuple(
            _scale_velocity(replace(p, program=bass_program), float(rng.uniform(0.8, 1.15)))
            for p in roles["bass"]
        ),
        "drums": tuple(
            _scale_velocity(replace(p, program=kit), float(rng.uniform(0.7, 1.15)))
            for p in roles["drums"]
        ),
        "other": tuple(other),
    }
    meta = {
        "source": "mma",
        "tempo_bpm": round(60e6 / tempos[0], 3),
        "key": f"{NOTE_NAMES[tonic]} {mode}",
        "transpose": 0,
        "programs": {"bass": [bass_program], "other": [p.program for p in other]},
        "kit": kit,
        "groove": groove.name,
        "groove_piece": groove.piece,
    }
    return SongParts(stems, tempos[0], TICKS_PER_BEAT, meta)


def limit_length(song: SongParts, max_ticks: int) -> SongParts:
    """Cut every part at `max_ticks` (tiny corpora for tests)."""
    stems = {
        stem: tuple(truncate_part(p, max_ticks) for p in parts)
        for stem, parts in song.stems.items()
    }
    return replace(song, stems=stems)


def _chorale_programs(rng: np.random.Generator) -> tuple[int, int, int]:
    families = list(OTHER_PROGRAMS.values())
    if rng.random() < 0.5:  # one instrument for the three upper voices (organ, strings, piano...)
        program = int(rng.choice(families[int(rng.integers(len(families)))]))
        return program, program, program
    return tuple(int(rng.choice(families[int(rng.integers(len(families)))])) for _ in range(3))  # type: ignore[return-value]


def _humanise(part: Part, rng: np.random.Generator, *, base: float) -> Part:
    """A voice's loudness plus a little per-note variation."""
    jitter = rng.normal(0.0, 6.0, size=len(part.notes))
    notes = tuple(
        replace(n, velocity=int(np.clip(round(base + j), 1, 127)))
        for n, j in zip(part.notes, jitter, strict=True)
    )
    return replace(part, notes=notes)


def _into_bass_range(part: Part) -> Part:
    """An octave down; a second octave up again if that leaves the median below A0+1 octave."""
    moved = shift_part(part, semitones=-12, lowest=21)
    pitches = sorted(n.pitch for n in moved.notes)
    if pitches and pitches[len(pitches) // 2] < 33:
        moved = shift_part(part, semitones=0)
    return moved


def _scale_velocity(part: Part, factor: float) -> Part:
    notes = tuple(
        replace(n, velocity=int(np.clip(round(n.velocity * factor), 1, 127))) for n in part.notes
    )
    return replace(part, notes=notes)


def _rescale(parts: list[Part], ticks_per_beat: int) -> tuple[Part, ...]:
    """Bring parts from the file's resolution to TICKS_PER_BEAT."""
    if ticks_per_beat == TICKS_PER_BEAT:
        return tuple(parts)

    def at(tick: int) -> int:
        return tick * TICKS_PER_BEAT // ticks_per_beat

    return tuple(
        replace(
            p,
            notes=tuple(
                Note(at(n.start), max(at(n.end), at(n.start) + 1), n.pitch, n.velocity)
                for n in p.notes
            ),
        )
        for p in parts
    )


def _chord_name(tonic: int, interval: int, kind: str) -> str:
    return NOTE_NAMES[(tonic + interval) % 12] + kind


def _transposed(tonic: str, semitones: int) -> str:
    from music21 import pitch

    return NOTE_NAMES[(pitch.Pitch(tonic).pitchClass + semitones) % 12]
