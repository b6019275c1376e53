"""The corpus builder on a tiny configuration: layout, alignment, levels, splits, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latsep.cli import main
from latsep.corpus import SPLITS, STEMS, BuildConfig, build_corpus, split_of
from latsep.corpus.soundfonts import soundfont_path


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".cache" not in p.parts
    }


def test_every_split_has_songs_with_three_aligned_mono_stems(tiny_corpus):
    root, index = tiny_corpus
    assert {s["split"] for s in index["songs"]} == set(SPLITS)
    assert json.loads((root / "index.json").read_text()) == index
    for song in index["songs"]:
        lengths = set()
        for stem in STEMS:
            info = sf.info(root / song["path"] / f"{stem}.flac")
            assert (info.samplerate, info.channels, info.subtype) == (22_050, 1, "PCM_16")
            lengths.add(info.frames)
            assert (root / song["path"] / f"{stem}.mid").is_file()
        assert lengths == {song["num_samples"]}
        assert song["seconds"] == pytest.approx(song["num_samples"] / 22_050, abs=1e-3)


def test_splits_reach_their_targets_with_short_songs(tiny_corpus):
    _, index = tiny_corpus
    config = BuildConfig.tiny(seed=3)
    for split in SPLITS:
        songs = [s for s in index["songs"] if s["split"] == split]
        total = sum(s["num_samples"] for s in songs) / 22_050
        assert total >= config.target_seconds[split]
        # the prefix without the last song was still short of the target: nothing extra
        assert total - songs[-1]["num_samples"] / 22_050 < config.target_seconds[split]
        # max_song_seconds cuts the music; one second of release tail follows
        assert all(s["seconds"] <= config.max_song_seconds + 1.0 + 0.01 for s in songs)


def test_both_sources_are_used_and_recorded(tiny_corpus):
    _, index = tiny_corpus
    train = [s for s in index["songs"] if s["split"] == "train"]
    assert {s["source"] for s in train} == {"chorale", "mma"}
    for song in index["songs"]:
        assert song["programs"]["bass"][0] in range(32, 40)
        assert song["kit"] in (0, 8, 16, 24, 25, 32, 40)
        assert 60 <= song["tempo_bpm"] <= 150
        assert song["piece"].startswith("bach/" if song["source"] == "chorale" else "mma:")


def test_stems_are_not_silent_and_levels_match_the_index(tiny_corpus):
    root, index = tiny_corpus
    for song in index["songs"]:
        for stem in STEMS:
            pcm, _ = sf.read(root / song["path"] / f"{stem}.flac", dtype="int16")
            x = pcm.astype(np.float64) / 32768.0
            rms_db = 20 * np.log10(np.sqrt(np.mean(x**2)))
            assert rms_db > -50.0, (song["song_id"], stem)
            assert rms_db == pytest.approx(song["rms_db"][stem], abs=1e-3)
            assert np.abs(x).max() <= 0.99  # headroom kept, nothing clipped


def test_stems_sound_where_the_music_is(tiny_corpus):
    """Alignment at song level: every stem is active in the first second (music starts at
    once) and the release tail at the end is quieter than the music."""
    root, index = tiny_corpus
    for song in index["songs"]:
        for stem in STEMS:
            pcm, _ = sf.read(root / song["path"] / f"{stem}.flac", dtype="float32")
            first = np.sqrt(np.mean(pcm[: 22_050 * 3 // 2] ** 2))
            tail = np.sqrt(np.mean(pcm[-2_205:] ** 2))
            assert first > 10 ** (-50 / 20), (song["song_id"], stem)
            assert tail < first


def test_splits_are_disjoint_by_piece_and_groove(tiny_corpus):
    _, index = tiny_corpus
    pieces = {split: set() for split in SPLITS}
    for song in index["songs"]:
        pieces[song["split"]].update({song["piece"], song["groove_piece"]})
        assert split_of(song["piece"], (0.1, 0.1)) == song["split"]
        assert split_of(song["groove_piece"], (0.1, 0.1)) == song["split"]
    assert not pieces["train"] & pieces["valid"]
    assert not pieces["train"] & pieces["test"]
    assert not pieces["valid"] & pieces["test"]


def test_split_of_is_stable_and_roughly_proportional():
    names = [f"piece-{i}" for i in range(4000)]
    splits = [split_of(n, (0.1, 0.1)) for n in names]
    assert splits == [split_of(n, (0.1, 0.1)) for n in names]
    assert 0.08 < splits.count("test") / 4000 < 0.12
    assert 0.08 < splits.count("valid") / 4000 < 0.12


def test_test_split_uses_a_soundfont_train_never_uses(tiny_corpus):
    _, index = tiny_corpus
    used = {
        split: {s["soundfont"] for s in index["songs"] if s["split"] == split} for split in SPLITS
    }
    assert used["test"] and not used["test"] & used["train"]
    default = BuildConfig.from_minutes(1.0)
    assert not set(default.soundfonts["test"]) & set(default.soundfonts["train"])
    for name in {*default.soundfonts["train"], *default.soundfonts["test"]}:
        assert soundfont_path(name).is_file()


def test_same_seed_gives_the_same_bytes_with_more_workers(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    build_corpus(BuildConfig.tiny(seed=3), tmp_path / "again", workers=2)
    first, second = _files(root), _files(tmp_path / "again")
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_another_seed_gives_other_songs(tiny_corpus, tmp_path):
    _, index = tiny_corpus
    other = build_corpus(BuildConfig.tiny(seed=4), tmp_path / "other", workers=1)
    assert [s["tempo_bpm"] for s in other["songs"]] != [s["tempo_bpm"] for s in index["songs"]]


def test_refuses_to_overwrite_a_corpus_unless_asked(tmp_path):
    config = BuildConfig(
        target_seconds={"train": 1.0}, max_song_seconds=1.0, soundfonts={"train": ("TimGM6mb",)}
    )
    out = tmp_path / "c"
    build_corpus(config, out)
    with pytest.raises(FileExistsError):
        build_corpus(config, out)
    (out / "train" / "stray.txt").write_text("x")
    index = build_corpus(config, out, overwrite=True)
    assert not (out / "train" / "stray.txt").exists()
    assert [s["split"] for s in index["songs"]] == ["train"]


def test_cli_builds_and_reports_stats(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "corpus",
                "build",
                "--out",
                str(out),
                "--minutes",
                "0.05",
                "--workers",
                "1",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    built = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert built["splits"]["train"]["seconds"] >= 3.0
    assert main(["corpus", "stats", str(out)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert set(stats["splits"]) == set(SPLITS)
    assert stats["splits"]["test"]["soundfonts"] == {
        "MuseScore_General_Lite": stats["splits"]["test"]["songs"]
    }
    assert main(["corpus", "build", "--out", str(out), "--minutes", "0.05"]) == 1  # exists


def test_missing_tools_fail_before_anything_is_written(tmp_path, monkeypatch):
    from latsep.corpus import grooves
    from latsep.corpus.grooves import MmaError

    bad_font = BuildConfig(target_seconds={"train": 1.0}, soundfonts={"train": ("NoSuchFont",)})
    with pytest.raises(ValueError, match="unknown soundfont"):
        build_corpus(bad_font, tmp_path / "a")
    monkeypatch.setattr(grooves.shutil, "which", lambda name: None)
    with pytest.raises(MmaError, match="Debian package mma"):
        build_corpus(BuildConfig.tiny(), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_split_that_never_gives_a_song_stops_the_build(tmp_path, monkeypatch):
    from latsep.corpus import build

    monkeypatch.setattr(build, "build_song", lambda config, out, task: None)
    monkeypatch.setattr(build, "MAX_SKIPPED_IN_A_ROW", 5)
    with pytest.raises(RuntimeError, match="in a row"):
        build_corpus(BuildConfig.tiny(), tmp_path / "c")


def test_stats_with_audio_report_alignment_activity_and_registers(tiny_corpus):
    from latsep.corpus.stats import corpus_stats

    root, index = tiny_corpus
    stats = corpus_stats(root, audio=True)
    for split in SPLITS:
        summary = stats["splits"][split]
        assert summary["songs"] == index["splits"][split]["songs"]
        checks = summary["audio"]
        assert checks["songs_with_unequal_stems"] == 0
        assert all(0.0 < v <= 1.0 for v in checks["least_active"].values())
    train = stats["splits"]["train"]["audio"]["median"]
    assert train["bass"]["centroid_hz"] < train["other"]["centroid_hz"]
    assert train["drums"]["above_4khz"] > max(
        train["bass"]["above_4khz"], train["other"]["above_4khz"]
    )


def test_stats_count_songs_whose_stems_differ_in_length(tmp_path, write_corpus, tone):
    from latsep.corpus.stats import corpus_stats

    n = 22_050
    stems = {stem: tone(n, 200.0 * (i + 1), -20.0) for i, stem in enumerate(STEMS)}
    root = write_corpus(tmp_path / "c", {"train-0": ("train", stems), "train-1": ("train", stems)})
    sf.write(root / "train" / "train-1" / "drums.flac", stems["drums"][:-100], n, subtype="PCM_16")
    checks = corpus_stats(root, audio=True)["splits"]["train"]["audio"]
    assert checks["songs_with_unequal_stems"] == 1


def test_stem_scores_share_tempo_and_length_with_the_audio(tiny_corpus):
    import mido

    root, index = tiny_corpus
    for song in index["songs"]:
        scores = [mido.MidiFile(str(root / song["path"] / f"{stem}.mid")) for stem in STEMS]
        tempos = {m.tempo for s in scores for m in s.tracks[0] if m.type == "set_tempo"}
        assert len(tempos) == 1
        assert tempos.pop() == pytest.approx(60e6 / song["tempo_bpm"], abs=1.0)  # bpm rounded
        lengths = {round(s.length, 6) for s in scores}
        assert len(lengths) == 1
        assert lengths.pop() == pytest.approx(song["num_samples"] / 22_050, abs=1 / 22_050)
