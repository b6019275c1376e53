"""The dataset API on corpora whose audio is known exactly: crops, mixtures, silence, chunks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from latsep.corpus import STEMS, Corpus, CropSampler, evaluation_chunks

SR = 22_050


@pytest.fixture
def known(tmp_path, write_corpus, tone):
    """Two train songs and two test songs; bass is silent in the first half of each song."""
    songs = {}
    for k, (split, length) in enumerate(
        [("train", 3 * SR), ("train", 5 * SR), ("test", 7 * SR), ("test", 6 * SR)]
    ):
        half = length // 2
        songs[f"{split}-{k}"] = (
            split,
            {
                "bass": tone(length, 55.0 * (k + 1), -20.0, start=half),
                "drums": tone(length, 1000.0 + 10 * k, -25.0),
                "other": tone(length, 440.0 + 3 * k, -18.0),
            },
        )
    return write_corpus(tmp_path / "known", songs)


def test_corpus_lists_songs_and_loads_stems_in_the_order_asked(known, tone):
    corpus = Corpus(known)
    assert [s.song_id for s in corpus.songs("train")] == ["train-0", "train-1"]
    assert len(corpus.songs()) == 4
    song = corpus.song("train-1")
    both = corpus.load_stems(song, ["drums", "bass"])
    assert both.shape == (2, 5 * SR) and both.dtype == np.float32
    every = corpus.load_stems("train-1")
    np.testing.assert_array_equal(both, every[[1, 0]])
    expected = tone(5 * SR, 1010.0, -25.0)
    assert np.abs(every[1] - expected).max() < 1.0 / 32767  # 16-bit rounding only
    with pytest.raises(ValueError):
        corpus.load_stems(song, ["vocals"])


def test_crops_are_aligned_slices_and_the_mixture_is_their_mean(known):
    corpus = Corpus(known)
    sampler = CropSampler(corpus, "train", ["other", "drums"], 0.5, seed=0)
    for _ in range(50):
        crop = sampler.sample()
        assert crop.stems.shape == (2, SR // 2) and crop.stems.dtype == np.float32
        full = corpus.load_stems(crop.song_id, ["other", "drums"])
        np.testing.assert_array_equal(crop.stems, full[:, crop.start : crop.start + SR // 2])
        np.testing.assert_array_equal(crop.mixture, crop.stems.mean(axis=0))


def test_crops_with_a_silent_requested_stem_are_skipped(known):
    corpus = Corpus(known)
    length = SR // 4
    with_bass = CropSampler(corpus, "train", ["bass", "drums", "other"], 0.25, seed=1)
    halves = {s.song_id: s.num_samples // 2 for s in corpus.songs("train")}
    for _ in range(300):
        crop = with_bass.sample()
        audible = crop.start + length - halves[crop.song_id]  # samples of bass inside the crop
        assert audible > 0
        rms = np.sqrt(np.mean(crop.stems[0].astype(np.float64) ** 2))
        assert rms > 10 ** (-45 / 20)
    # without bass, crops come from anywhere, including the bass-less first halves
    without = CropSampler(corpus, "train", ["drums", "other"], 0.25, seed=1)
    starts = [(c.song_id, c.start) for c in (without.sample() for _ in range(300))]
    assert any(start + length <= halves[song] for song, start in starts)


def test_sampling_is_uniform_over_positions_not_songs(known):
    sampler = CropSampler(known, "train", ["drums", "other"], 1.0, seed=2)
    ids = [sampler.sample().song_id for _ in range(3000)]
    # valid starts: 2 s + 1 sample vs 4 s + 1 sample of positions
    assert ids.count("train-1") / len(ids) == pytest.approx(4 / 6, abs=0.04)


def test_seeds_make_crops_reproducible(known):
    a = CropSampler(known, "train", ["bass", "other"], 0.5, seed=7)
    b = CropSampler(known, "train", ["bass", "other"], 0.5, seed=7)
    c = CropSampler(known, "train", ["bass", "other"], 0.5, seed=8)
    first = [(x.song_id, x.start) for x in (a.sample() for _ in range(20))]
    assert first == [(x.song_id, x.start) for x in (b.sample() for _ in range(20))]
    assert first != [(x.song_id, x.start) for x in (c.sample() for _ in range(20))]


def test_batches_stack_stems_and_mixtures(known):
    sampler = CropSampler(known, "train", STEMS, 0.2, seed=0)
    stems, mixtures = sampler.batch(6)
    assert stems.shape == (6, 3, round(0.2 * SR)) and mixtures.shape == (6, round(0.2 * SR))
    np.testing.assert_array_equal(mixtures, stems.mean(axis=1))


def test_random_gains_scale_each_stem_within_the_range(known):
    plain = CropSampler(known, "train", ["drums", "other"], 0.5, seed=3)
    gained = CropSampler(
        known, "train", ["drums", "other"], 0.5, seed=3, random_gain_db=(-6.0, 6.0)
    )
    ratios = []
    for _ in range(30):
        a, b = plain.sample(), gained.sample()
        assert (a.song_id, a.start) == (b.song_id, b.start)
        ratio_db = 20 * np.log10(np.abs(b.stems).max(axis=1) / np.abs(a.stems).max(axis=1))
        assert np.all(ratio_db >= -6.0 - 1e-3) and np.all(ratio_db <= 6.0 + 1e-3)
        np.testing.assert_allclose(b.mixture, b.stems.mean(axis=0), atol=1e-7)
        ratios.extend(ratio_db)
        plain.rng.uniform(size=(2, 1))  # keep both generators in step
    assert np.std(ratios) > 1.0


def test_an_always_silent_stem_is_an_error_not_a_hang(tmp_path, write_corpus, tone):
    length = 2 * SR
    root = write_corpus(
        tmp_path / "mute",
        {
            "train-0": (
                "train",
                {
                    "bass": np.zeros(length),
                    "drums": tone(length, 900, -20),
                    "other": tone(length, 300, -20),
                },
            )
        },
    )
    with pytest.raises(RuntimeError, match="audible"):
        CropSampler(root, "train", ["bass", "drums"], 0.5, seed=0, max_tries=50).sample()
    with pytest.raises(ValueError):
        CropSampler(root, "train", ["drums"], 5.0, seed=0)  # longer than every song


def test_a_sampler_pickles_without_its_audio(known):
    sampler = CropSampler(known, "train", ["drums", "other"], 0.5, seed=4)
    sampler.sample()
    data = pickle.dumps(sampler)
    assert len(data) < 50_000  # the split holds 8 s x 3 stems = 1 MB of samples
    copy = pickle.loads(data)
    for _ in range(5):
        a, b = sampler.sample(), copy.sample()
        assert (a.song_id, a.start) == (b.song_id, b.start)
        np.testing.assert_array_equal(a.stems, b.stems)


def test_split_audio_is_cached_and_memory_mapped(known):
    first = Corpus(known).split_pcm("train")
    cached = list((known / ".cache").glob("train-*.npy"))
    assert len(cached) == 1
    second = Corpus(known).split_pcm("train")
    assert isinstance(second.pcm, np.memmap) and second.pcm.dtype == np.int16
    np.testing.assert_array_equal(np.asarray(first.pcm), np.asarray(second.pcm))
    assert second.pcm.shape == (3, 8 * SR)
    np.testing.assert_array_equal(second.offsets, [0, 3 * SR])


def test_evaluation_chunks_are_fixed_audible_and_on_the_grid(known):
    chunks = evaluation_chunks(known, ["bass", "other"], seconds=1.0, count=4, seed=0)
    again = evaluation_chunks(known, ["bass", "other"], seconds=1.0, count=4, seed=0)
    assert [(c.song_id, c.start) for c in chunks] == [(c.song_id, c.start) for c in again]
    assert len(chunks) == 4
    assert {c.song_id for c in chunks} == {"test-2", "test-3"}  # spread over songs
    corpus = Corpus(known)
    for c in chunks:
        assert c.start % SR == 0
        assert c.start + SR > corpus.song(c.song_id).num_samples // 2  # holds some bass
        np.testing.assert_array_equal(
            c.stems, corpus.load_stems(c.song_id, ["bass", "other"])[:, c.start : c.start + SR]
        )
        np.testing.assert_array_equal(c.mixture, c.stems.mean(axis=0))
    assert chunks == sorted(chunks, key=lambda c: (c.song_id, c.start))


def test_evaluation_chunks_return_what_exists_when_asked_for_too_many(known):
    chunks = evaluation_chunks(known, ["bass", "drums"], seconds=1.0, count=100, seed=0)
    # 1-s grid cells holding some bass: from 3 s on in both songs (7 s and 6 s long)
    assert len(chunks) == 4 + 3
    drums_only = evaluation_chunks(known, ["drums"], seconds=1.0, count=100, seed=0)
    assert len(drums_only) == 7 + 6
    other_seed = evaluation_chunks(known, ["drums"], seconds=1.0, count=5, seed=1)
    assert [(c.song_id, c.start) for c in other_seed] != [
        (c.song_id, c.start)
        for c in evaluation_chunks(known, ["drums"], seconds=1.0, count=5, seed=0)
    ]


def test_dataset_api_on_a_rendered_corpus(tiny_corpus):
    root, _ = tiny_corpus
    sampler = CropSampler(root, "train", ["bass", "drums", "other"], 1.0, seed=0)
    stems, mixtures = sampler.batch(8)
    np.testing.assert_array_equal(mixtures, stems.mean(axis=1))
    assert stems.shape == (8, 3, SR)
    assert np.all(np.sqrt(np.mean(stems.astype(np.float64) ** 2, axis=2)) > 10 ** (-45 / 20))
    chunks = evaluation_chunks(root, ["bass", "drums"], seconds=1.0, count=3)
    assert chunks and all(c.song_id.startswith("test-") for c in chunks)
