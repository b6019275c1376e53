"""Audio I/O: round trips per format, resampling accuracy, downmix, and every bad-input error."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latsep.audio import (
    SAMPLE_RATE,
    AudioTooLong,
    EmptyAudio,
    NonFiniteAudio,
    SilentAudio,
    UndecodableAudio,
    encode_audio,
    load_audio,
    probe_duration,
    resample,
    write_audio,
)


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    noise = reference - estimate
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum(noise**2), 1e-30)))


# Ideal rounding at 0.3 RMS gives ~90 dB (16-bit) and ~138 dB (24-bit); libsndfile truncates,
# which costs up to ~6 dB, so the bounds sit 10 dB under the ideal.
@pytest.mark.parametrize(
    ("fmt", "subtype", "min_snr"),
    [
        ("wav", "PCM_16", 80.0),
        ("wav", "PCM_24", 128.0),
        ("wav", "FLOAT", 200.0),
        ("flac", "PCM_16", 80.0),
        ("flac", "PCM_24", 128.0),
    ],
)
def test_round_trip_keeps_samples(tmp_path: Path, fmt, subtype, min_snr) -> None:
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(SAMPLE_RATE)).clip(-0.99, 0.99).astype(np.float32)
    path = tmp_path / f"x.{fmt}"
    write_audio(path, audio, format=fmt, subtype=subtype)
    loaded = load_audio(path)
    assert loaded.dtype == np.float32
    assert loaded.shape == audio.shape
    if subtype == "FLOAT":
        np.testing.assert_array_equal(loaded, audio)
    else:
        assert snr_db(audio, loaded) > min_snr


def test_bytes_round_trip_and_duration() -> None:
    audio = sine(440, 1.5, SAMPLE_RATE)
    data = encode_audio(audio, format="flac")
    assert probe_duration(data) == pytest.approx(1.5)
    assert snr_db(audio, load_audio(data)) > 85


@pytest.mark.parametrize("fmt", ["OGG", "MP3"])
def test_reads_lossy_formats(tmp_path: Path, fmt: str) -> None:
    audio = sine(440, 1.0, 44_100)
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, audio, 44_100, format=fmt)
    loaded = load_audio(path)
    # Lossy codecs add padding and delay: length within 5% and energy within 1 dB.
    assert abs(len(loaded) - SAMPLE_RATE) < 0.05 * SAMPLE_RATE
    rms_in, rms_out = np.sqrt(np.mean(audio**2)), np.sqrt(np.mean(loaded**2))
    assert abs(20 * np.log10(rms_out / rms_in)) < 1.0


def test_stereo_is_downmixed_to_the_channel_mean(tmp_path: Path) -> None:
    left, right = sine(220, 1.0, SAMPLE_RATE), sine(330, 1.0, SAMPLE_RATE, 0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("rate_in", [44_100, 48_000, 16_000, 8_000])
def test_resampling_matches_the_analytic_sine(rate_in: int) -> None:
    freq = 1_000.0
    out = resample(sine(freq, 2.0, rate_in), rate_in, SAMPLE_RATE)
    expected = sine(freq, 2.0, SAMPLE_RATE)
    assert abs(len(out) - len(expected)) <= 1
    n = min(len(out), len(expected))
    core = slice(SAMPLE_RATE // 10, n - SAMPLE_RATE // 10)  # skip the filter's edge transients
    assert snr_db(expected[core], out[core]) > 60


def test_resampling_removes_content_above_the_new_nyquist() -> None:
    tone = sine(15_000, 1.0, 44_100)  # above 11,025 Hz: must vanish, not alias
    out = resample(tone, 44_100, SAMPLE_RATE)
    assert np.sqrt(np.mean(out[1000:-1000] ** 2)) < 1e-3


def test_garbage_bytes_are_undecodable() -> None:
    with pytest.raises(UndecodableAudio, match="not a readable audio file"):
        load_audio(b"this is not audio at all" * 100)


def test_truncated_flac_is_undecodable_or_shorter() -> None:
    data = encode_audio(sine(440, 2.0, SAMPLE_RATE), format="flac")
    truncated = data[: len(data) // 3]
    try:
        audio = load_audio(truncated)
    except UndecodableAudio:
        return
    # libsndfile may decode the frames that survived; then it must be the shorter prefix.
    assert len(audio) < 2 * SAMPLE_RATE


def test_header_only_file_is_undecodable() -> None:
    data = encode_audio(sine(440, 1.0, SAMPLE_RATE), format="wav")
    with pytest.raises(UndecodableAudio):
        load_audio(data[:20])


def test_empty_audio() -> None:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(0, dtype=np.float32), SAMPLE_RATE, format="WAV")
    with pytest.raises(EmptyAudio):
        load_audio(buffer.getvalue())


def test_all_zero_audio_is_refused_unless_allowed() -> None:
    data = encode_audio(np.zeros(SAMPLE_RATE, dtype=np.float32))
    with pytest.raises(SilentAudio):
        load_audio(data)
    assert not load_audio(data, allow_silent=True).any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_audio(bad: float) -> None:
    audio = sine(440, 0.5, SAMPLE_RATE)
    audio[100] = bad
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    with pytest.raises(NonFiniteAudio):
        load_audio(buffer.getvalue())


def test_too_long_is_refused_from_the_header() -> None:
    data = encode_audio(sine(440, 3.0, SAMPLE_RATE))
    with pytest.raises(AudioTooLong, match=r"limit is 2\.0 s"):
        load_audio(data, max_seconds=2.0)
    assert len(load_audio(data, max_seconds=3.5)) == 3 * SAMPLE_RATE


def test_flac_refuses_float_samples(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FLAC"):
        write_audio(
            tmp_path / "x.flac", sine(440, 0.1, SAMPLE_RATE), format="flac", subtype="FLOAT"
        )


def test_integer_formats_clip_instead_of_wrapping() -> None:
    loud = np.full(1000, 1.5, dtype=np.float32)
    assert load_audio(encode_audio(loud), allow_silent=True).max() == pytest.approx(1.0, abs=1e-4)
