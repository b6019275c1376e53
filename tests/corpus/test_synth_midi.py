"""The pieces under the builder: MIDI round trip, FluidSynth rendering, levels, soundfonts, MMA."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from latsep.audio.levels import PEAK_LIMIT, active_rms, set_level, to_pcm16
from latsep.corpus.midi import DRUM_CHANNEL, Note, Part, read_midi, shift_part, write_midi
from latsep.corpus.soundfonts import drum_kits, presets, soundfont_path
from latsep.corpus.synth import BLOCK, Synth, synth_for

SR = 22_050
SPT = 0.5 / 192  # seconds per tick at 120 bpm, 192 ticks per quarter


def _onset(audio: np.ndarray, threshold: float = 1e-4) -> int:
    return int(np.argmax(np.abs(audio) > threshold))


def test_midi_round_trip_keeps_notes_programs_and_tempo():
    parts = (
        Part("keys", 0, 5, (Note(0, 100, 60, 90), Note(50, 150, 64, 70), Note(150, 200, 60, 127))),
        Part("kit", DRUM_CHANNEL, 25, (Note(10, 20, 36, 100),)),
    )
    data = write_midi(parts, 400_000, 300, 192)
    sequence, tempos, meter = read_midi(data)
    assert tempos == (400_000,) and meter == (4, 4) and sequence.ticks_per_beat == 192
    assert [(p.channel, p.program, p.notes) for p in sequence.parts] == [
        (p.channel, p.program, p.notes) for p in parts
    ]
    assert write_midi(parts, 400_000, 300, 192) == data  # deterministic bytes


def test_midi_cuts_notes_at_the_end_and_pairs_repeated_pitches_in_order():
    parts = (
        Part("a", 0, 0, (Note(0, 100, 60, 80), Note(50, 400, 60, 81), Note(500, 600, 62, 82))),
    )
    sequence, _, _ = read_midi(write_midi(parts, 500_000, 300, 192))
    # the second note-on of 60 is closed by the next note-off of 60: first in, first out
    assert sequence.parts[0].notes == (Note(0, 100, 60, 80), Note(50, 300, 60, 81))


def test_shift_part_moves_and_drops_out_of_range_notes():
    part = Part("b", 0, 33, (Note(0, 10, 40, 80), Note(20, 30, 30, 80)))
    moved = shift_part(part, 5, -12, lowest=21)
    assert moved.notes == (Note(5, 15, 28, 80),)
    assert shift_part(part, -10).notes == (Note(10, 20, 30, 80),)  # before tick 0: dropped


def test_soundfont_preset_tables():
    tim = soundfont_path("TimGM6mb")
    assert drum_kits(tim) == (0, 8, 16, 24, 25, 32, 40, 48)
    assert {(0, p) for p in range(128)} <= presets(tim)  # a full General MIDI set
    muse = soundfont_path("MuseScore_General_Lite")  # compressed sf3: same RIFF layout
    assert {0, 8, 16, 24, 25, 32, 40}.issubset(drum_kits(muse))
    with pytest.raises(ValueError):
        soundfont_path("NoSuchFont")


def test_render_is_exact_length_and_notes_at_one_tick_start_at_one_sample():
    synth = synth_for(soundfont_path("TimGM6mb"), SR)
    start = 7 * 192 // 3  # not on the block grid
    bass = (Part("bass", 0, 33, (Note(start, start + 192, 40, 100),)),)
    kit = (Part("kit", DRUM_CHANNEL, 0, (Note(start, start + 20, 38, 100),)),)
    keys = (Part("keys", 3, 0, (Note(start, start + 192, 72, 100),)),)
    n = 2 * SR + 17
    onsets = []
    for parts in (bass, kit, keys):
        audio = synth.render(parts, SPT, n)
        assert audio.shape == (n,) and audio.dtype == np.float32
        assert np.abs(audio).max() > 0.01
        onsets.append(_onset(audio))
    expected = round(start * SPT * SR / BLOCK) * BLOCK
    assert all(expected <= o < expected + BLOCK for o in onsets)  # the attack starts in that block
    assert max(onsets) - min(onsets) < BLOCK // 2


def test_render_does_not_depend_on_what_the_synth_played_before():
    font = soundfont_path("TimGM6mb")
    parts = (
        Part("bass", 0, 34, tuple(Note(i * 96, i * 96 + 90, 40 + i % 5, 100) for i in range(12))),
    )
    fresh = Synth(font, SR).render(parts, SPT, SR * 3)
    shared = synth_for(font, SR)
    shared.render(
        (Part("pad", 0, 89, (Note(0, 2000, 60, 120), Note(0, 2000, 67, 120))),), SPT, SR * 2
    )
    np.testing.assert_array_equal(shared.render(parts, SPT, SR * 3), fresh)


def test_levels_set_the_active_rms_and_keep_headroom():
    rng = np.random.default_rng(0)
    audio = np.zeros(SR * 4, dtype=np.float32)
    audio[SR : 2 * SR] = 0.1 * rng.standard_normal(SR).astype(np.float32)  # a quarter sounds
    scaled, gain_db = set_level(audio, -20.0)
    assert 20 * np.log10(active_rms(scaled)) == pytest.approx(-20.0, abs=0.05)
    assert gain_db == pytest.approx(-20.0 - 20 * np.log10(active_rms(audio)), abs=1e-3)
    loud, _ = set_level(audio, 0.0)  # would clip: the peak limit wins
    assert np.abs(loud).max() == pytest.approx(PEAK_LIMIT, rel=1e-5)
    pcm = to_pcm16(np.array([1.5, -1.5, 0.5, 0.0], dtype=np.float32))
    assert pcm.tolist() == [32767, -32768, 16384, 0]


@pytest.mark.skipif(shutil.which("mma") is None, reason="mma is not installed")
def test_mma_is_deterministic_and_its_tracks_get_stem_roles():
    from latsep.corpus.grooves import groove_catalogue, run_mma, split_roles

    grooves = {g.name: g for g in groove_catalogue()}
    assert len(grooves) > 500 and not any("intro" in name.lower() for name in grooves)
    groove = grooves["50sRock"]
    data = run_mma(groove, ["C", "Am", "F", "G7"], 110, 5)
    assert run_mma(groove, ["C", "Am", "F", "G7"], 110, 5) == data
    sequence, tempos, meter = read_midi(data)
    assert len(tempos) == 1 and 60e6 / tempos[0] == pytest.approx(110, abs=0.01) and meter == (4, 4)
    roles = split_roles(sequence)
    assert roles["drums"] and roles["bass"] and roles["other"]
    assert all(p.is_drum for p in roles["drums"])
    assert all(p.name.upper().startswith(("BASS", "WALK")) for p in roles["bass"])
    # 50sRock's sax riff is a "Bass-Sax" track: a sax, so it is accompaniment
    assert any(p.name.upper().startswith("BASS") for p in roles["other"])
