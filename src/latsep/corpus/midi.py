"""A small note-level MIDI model: parts of notes on a shared tick grid, read and written with mido.

Every stem of a song is written as its own MIDI file with the same resolution, the same
single tempo and the same end tick, so the stems FluidSynth renders are sample-aligned.
Only notes survive a round trip (controllers and pitch bends are dropped on purpose: the
builder sets programs, kits and velocities itself).
"""

from __future__ import annotations

import io
from collections import defaultdict, deque
from dataclasses import dataclass, replace
from pathlib import Path

import mido

TICKS_PER_BEAT = 192  # MMA's resolution; chorale durations (down to 32nd triplets) fit it exactly
DRUM_CHANNEL = 9  # GM channel 10


@dataclass(frozen=True)
class Note:
    start: int  # tick
    end: int  # tick, > start
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Part:
    """One instrument: a channel, a GM program (the kit for drums) and its notes."""

    name: str
    channel: int
    program: int
    notes: tuple[Note, ...]

    @property
    def is_drum(self) -> bool:
        return self.channel == DRUM_CHANNEL

    @property
    def end(self) -> int:
        return max((n.end for n in self.notes), default=0)


@dataclass(frozen=True)
class Sequence:
    """Parts on one tick grid with one tempo (microseconds per quarter note)."""

    parts: tuple[Part, ...]
    tempo: int
    ticks_per_beat: int = TICKS_PER_BEAT


def read_midi(source: str | Path | bytes) -> tuple[Sequence, tuple[int, ...], tuple[int, int]]:
    """Parse a MIDI file into parts (one per track with notes).

    Returns the sequence, every distinct tempo in the file (callers refuse tempo changes)
    and the first time signature (numerator, denominator), (4, 4) if none.
    """
    midi = (
        mido.MidiFile(file=io.BytesIO(source))
        if isinstance(source, bytes)
        else mido.MidiFile(str(source))
    )
    tempos: list[int] = []
    meter = None
    parts: list[Part] = []
    for track in midi.tracks:
        tick = 0
        open_notes: dict[tuple[int, int], deque[tuple[int, int]]] = defaultdict(deque)
        notes: dict[int, list[Note]] = defaultdict(list)
        programs: dict[int, int] = {}
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo" and msg.tempo not in tempos:
                tempos.append(msg.tempo)
            elif msg.type == "time_signature" and meter is None:
                meter = (msg.numerator, msg.denominator)
            elif msg.type == "program_change":
                programs.setdefault(msg.channel, msg.program)
            elif msg.type == "note_on" and msg.velocity > 0:
                open_notes[msg.channel, msg.note].append((tick, msg.velocity))
            elif msg.type in ("note_off", "note_on") and open_notes[msg.channel, msg.note]:
                start, velocity = open_notes[msg.channel, msg.note].popleft()  # first in, first out
                if tick > start:
                    notes[msg.channel].append(Note(start, tick, msg.note, velocity))
        for channel, channel_notes in sorted(notes.items()):
            parts.append(
                Part(
                    track.name,
                    channel,
                    programs.get(channel, 0),
                    tuple(sorted(channel_notes, key=_order)),
                )
            )
    tempo = tempos[0] if tempos else 500_000
    return Sequence(tuple(parts), tempo, midi.ticks_per_beat), tuple(tempos), meter or (4, 4)


def write_midi(parts: tuple[Part, ...], tempo: int, end_tick: int, ticks_per_beat: int) -> bytes:
    """A type-1 MIDI file: a conductor track (tempo) and one track per part.

    Every track ends exactly at `end_tick`, so stems written from the same song have the
    same length whatever their own last note.
    """
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    conductor = mido.MidiTrack(
        [
            mido.MetaMessage("set_tempo", tempo=tempo, time=0),
            mido.MetaMessage("end_of_track", time=end_tick),
        ]
    )
    midi.tracks.append(conductor)
    for part in parts:
        events: list[tuple[int, int, int, int]] = []  # (tick, is_on, pitch, velocity): offs first
        for note in part.notes:
            if note.start < end_tick:
                events.append((note.start, 1, note.pitch, min(127, max(1, note.velocity))))
                events.append((min(note.end, end_tick), 0, note.pitch, 0))
        events.sort()
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=part.name[:60], time=0)])
        if not part.is_drum:  # bank 0; on channel 10 FluidSynth picks the kit from bank 128
            track.append(mido.Message("control_change", channel=part.channel, control=0, value=0))
        track.append(mido.Message("program_change", channel=part.channel, program=part.program))
        tick = 0
        for at, is_on, pitch, velocity in events:
            kind = "note_on" if is_on else "note_off"
            # values are in range by construction; mido's per-message checks dominate the cost
            track.append(
                mido.Message(
                    kind,
                    skip_checks=True,
                    channel=part.channel,
                    note=pitch,
                    velocity=velocity,
                    time=at - tick,
                )
            )
            tick = at
        track.append(mido.MetaMessage("end_of_track", time=end_tick - tick))
        midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def shift_part(
    part: Part, ticks: int = 0, semitones: int = 0, *, lowest: int = 0, highest: int = 127
) -> Part:
    """Move a part in time and pitch; notes pushed outside [lowest, highest] or before
    tick 0 are dropped."""
    notes = tuple(
        replace(n, start=n.start + ticks, end=n.end + ticks, pitch=n.pitch + semitones)
        for n in part.notes
        if lowest <= n.pitch + semitones <= highest and n.start + ticks >= 0
    )
    return replace(part, notes=notes)


def truncate_part(part: Part, end_tick: int) -> Part:
    """Cut notes at `end_tick` (notes that start later are dropped)."""
    notes = tuple(replace(n, end=min(n.end, end_tick)) for n in part.notes if n.start < end_tick)
    return replace(part, notes=notes)


def _order(note: Note) -> tuple[int, int, int]:
    return note.start, note.pitch, note.end
