"""What libsndfile cannot read goes through ffmpeg, with the same checks before decoding."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from latsep.audio import AudioTooLong, UndecodableAudio, ffmpeg, load_upload
from latsep.jobs.limits import DecodeLimits
from latsep.service.uploads import inspect_audio

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="no ffmpeg"
)
# extension -> the rate its codec decodes at (Opus always at 48 kHz)
FORMATS = {"m4a": 44100, "aac": 44100, "opus": 48000, "mp3": 44100, "ogg": 44100}


def encode(path: Path, seconds: float = 1.0, rate: int = 44100) -> bytes:
    """A stereo file with different tones on the two channels."""
    tones = [f"sine=frequency={f}:duration={seconds}:sample_rate={rate}" for f in (220, 330)]
    command = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", tones[0], "-f", "lavfi"]
    command += ["-i", tones[1], "-filter_complex", "amerge=inputs=2", str(path)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return path.read_bytes()


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_each_format_decodes_with_its_channels_and_rate(tmp_path: Path, ext: str) -> None:
    data = encode(tmp_path / f"mix.{ext}")
    for source in (data, tmp_path / f"mix.{ext}"):
        upload = load_upload(source)
        assert upload.channels == 2 and upload.sample_rate == FORMATS[ext]
        assert abs(upload.audio.shape[1] / upload.sample_rate - 1.0) < 0.1
        left, right = upload.audio[:, 5000:10000]
        assert not np.allclose(left, right)  # two channels, two tones
    info = inspect_audio(data, 10.0, limits=DecodeLimits(8, 192_000, 10**9))
    assert info.channels == 2 and info.sample_rate == FORMATS[ext]
    assert abs(info.duration_seconds - 1.0) < 0.1


def test_too_long_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    data = encode(tmp_path / "long.m4a", seconds=3.0)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file its probe said was too long")

    monkeypatch.setattr(ffmpeg, "decode", no_decoding)
    with pytest.raises(AudioTooLong, match=r"limit is 2\.0 s"):
        load_upload(data, max_seconds=2.0)
    with pytest.raises(AudioTooLong, match=r"limit is 2\.0 s"):
        inspect_audio(data, 2.0)
    with pytest.raises(Exception, match=r"channels|sample rate"):
        inspect_audio(data, 10.0, limits=DecodeLimits(1, 192_000, 10**9))


def test_a_lying_duration_is_cut_at_the_limit(tmp_path: Path) -> None:
    data = encode(tmp_path / "mix.m4a", seconds=3.0)
    found = ffmpeg.probe(data)
    lying = ffmpeg.Probe(found.sample_rate, found.channels, 1.0)  # says 1 s, holds 3 s
    with pytest.raises(AudioTooLong):
        ffmpeg.decode(data, lying, 2.0)


def test_garbage_stays_undecodable() -> None:
    with pytest.raises(UndecodableAudio, match="not a readable audio file"):
        load_upload(b"hello " * 100)
