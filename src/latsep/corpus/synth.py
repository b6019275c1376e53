"""FluidSynth in-process (libfluidsynth through ctypes): note parts -> mono float32.

A worker loads each soundfont once and renders many stems with it; the FluidSynth CLI
would reload the soundfont for every stem, which costs more than the synthesis itself
(4-6 s per stem for the compressed MuseScore sf3). Events are placed on FluidSynth's
64-sample block grid and every write is a whole number of blocks, so a note at a given
tick starts at the same sample in every stem of a song (stems are aligned). Each stem is
played by a fresh synthesizer that shares the loaded soundfont, so a stem's samples do not
depend on what the worker rendered before (checked: bit-identical to a new process).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from pathlib import Path

import numpy as np

from latsep.corpus.midi import Part
from latsep.corpus.soundfonts import DRUM_BANK

BLOCK = 64  # FluidSynth's internal block (FLUID_BUFSIZE)
SYNTH_GAIN = 0.5  # float output cannot clip; levels are set afterwards
_FLUID_FAILED = -1


class SynthError(RuntimeError):
    """libfluidsynth is missing or refused a soundfont."""


@cache
def synth_library() -> ctypes.CDLL:
    name = ctypes.util.find_library("fluidsynth") or "libfluidsynth.so.3"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise SynthError("libfluidsynth not found; install the Debian package fluidsynth") from exc
    vp, ci, cd, cs = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_char_p
    signatures = {
        "new_fluid_settings": ([], vp),
        "fluid_settings_setnum": ([vp, cs, cd], ci),
        "fluid_settings_setint": ([vp, cs, ci], ci),
        "new_fluid_synth": ([vp], vp),
        "fluid_synth_sfload": ([vp, cs, ci], ci),
        "fluid_synth_program_select": ([vp, ci, ci, ci, ci], ci),
        "fluid_synth_noteon": ([vp, ci, ci, ci], ci),
        "fluid_synth_noteoff": ([vp, ci, ci], ci),
        "fluid_synth_set_gain": ([vp, ctypes.c_float], None),
        "fluid_synth_write_float": ([vp, ci, vp, ci, ci, vp, ci, ci], ci),
        "fluid_set_log_function": ([ci, vp, vp], vp),
        "fluid_synth_get_sfont_by_id": ([vp, ci], vp),
        "fluid_synth_add_sfont": ([vp, vp], ci),
        "fluid_synth_remove_sfont": ([vp, vp], ci),
        "delete_fluid_synth": ([vp], None),
        "delete_fluid_settings": ([vp], None),
    }
    for function, (args, result) in signatures.items():
        getattr(lib, function).argtypes = args
        getattr(lib, function).restype = result
    for level in range(5):  # FluidSynth logs missing presets etc. to stderr: keep workers quiet
        lib.fluid_set_log_function(level, None, None)
    return lib


class Synth:
    """One FluidSynth instance with one soundfont, dry (no reverb, no chorus)."""

    def __init__(self, soundfont: Path, sample_rate: int) -> None:
        lib = synth_library()
        self._lib = lib
        self.sample_rate = sample_rate
        self._settings = lib.new_fluid_settings()
        lib.fluid_settings_setnum(self._settings, b"synth.sample-rate", float(sample_rate))
        lib.fluid_settings_setint(self._settings, b"synth.reverb.active", 0)
        lib.fluid_settings_setint(self._settings, b"synth.chorus.active", 0)
        lib.fluid_settings_setint(self._settings, b"synth.polyphony", 256)
        self._holder = self._new_synth()  # owns the loaded soundfont
        font_id = lib.fluid_synth_sfload(self._holder, str(soundfont).encode(), 0)
        if font_id == _FLUID_FAILED:
            raise SynthError(f"FluidSynth could not load the soundfont {soundfont}")
        self._sfont = lib.fluid_synth_get_sfont_by_id(self._holder, font_id)

    def _new_synth(self):
        synth = self._lib.new_fluid_synth(self._settings)
        if not synth:
            raise SynthError("FluidSynth could not create a synthesizer")
        self._lib.fluid_synth_set_gain(synth, SYNTH_GAIN)
        return synth

    def render(
        self, parts: tuple[Part, ...], seconds_per_tick: float, num_samples: int
    ) -> np.ndarray:
        """Play `parts` from silence; mono float32 of exactly `num_samples`, shape (L,)."""
        lib = self._lib
        # A fresh synthesizer per stem: a reused one leaks state (voices keep filter and
        # interpolation history), which would make a stem depend on the worker's past.
        synth = self._new_synth()
        font = lib.fluid_synth_add_sfont(synth, self._sfont)
        try:
            for part in parts:
                bank = DRUM_BANK if part.is_drum else 0
                lib.fluid_synth_program_select(synth, part.channel, font, bank, part.program)
            return self._play(synth, parts, seconds_per_tick, num_samples)
        finally:
            lib.fluid_synth_remove_sfont(synth, self._sfont)  # shared: detach, do not free
            lib.delete_fluid_synth(synth)

    def _play(
        self, synth, parts: tuple[Part, ...], seconds_per_tick: float, num_samples: int
    ) -> np.ndarray:
        lib = self._lib
        samples_per_tick = seconds_per_tick * self.sample_rate
        events = []  # (block, order, channel, pitch, velocity): note-offs (order 0) first
        for part in parts:
            for note in part.notes:
                on = round(note.start * samples_per_tick / BLOCK)
                off = max(on + 1, round(note.end * samples_per_tick / BLOCK))
                events.append((on, 1, part.channel, note.pitch, min(127, max(1, note.velocity))))
                events.append((off, 0, part.channel, note.pitch, 0))
        events.sort()
        total = -(-num_samples // BLOCK) * BLOCK
        left = np.zeros(total, dtype=np.float32)
        right = np.zeros(total, dtype=np.float32)
        cursor = 0  # in samples, always a whole number of blocks
        for block, is_on, channel, pitch, velocity in events:
            at = min(block * BLOCK, total)
            if at > cursor:
                self._write(synth, left, right, cursor, at)
                cursor = at
            if at >= total:
                break
            if is_on:
                lib.fluid_synth_noteon(synth, channel, pitch, velocity)
            else:
                lib.fluid_synth_noteoff(synth, channel, pitch)
        if cursor < total:
            self._write(synth, left, right, cursor, total)
        return ((left + right) * np.float32(0.5))[:num_samples]

    def _write(self, synth, left: np.ndarray, right: np.ndarray, start: int, end: int) -> None:
        pointer_l = left.ctypes.data + 4 * start
        pointer_r = right.ctypes.data + 4 * start
        if (
            self._lib.fluid_synth_write_float(synth, end - start, pointer_l, 0, 1, pointer_r, 0, 1)
            != 0
        ):
            raise SynthError("FluidSynth failed to render")

    def close(self) -> None:
        if self._holder:
            self._lib.delete_fluid_synth(self._holder)
            self._lib.delete_fluid_settings(self._settings)
            self._holder = None


_SYNTHS: dict[tuple[Path, int], Synth] = {}


def synth_for(soundfont: Path, sample_rate: int) -> Synth:
    """The process's synthesizer for this soundfont (loaded on first use)."""
    key = (Path(soundfont), sample_rate)
    if key not in _SYNTHS:
        _SYNTHS[key] = Synth(key[0], sample_rate)
    return _SYNTHS[key]
