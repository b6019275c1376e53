"""Audio in and out: decode what libsndfile reads (else ffmpeg), resample with soxr, write.

`load_audio` gives float32 mono at `SAMPLE_RATE` (what the models hear); `load_upload` the
audio as given, (channels, L) at its own rate (what the stems are cut from). L: samples.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import soundfile as sf
import soxr

from latsep.audio import ffmpeg
from latsep.audio.errors import (
    AudioTooLong,
    EmptyAudio,
    NonFiniteAudio,
    SilentAudio,
    UndecodableAudio,
)

SAMPLE_RATE = 22_050
# A day of audio: anything longer is a mistake or an attack, whatever the caller's own limit.
ABSURD_SECONDS = 24 * 3600.0

AudioSource = str | Path | bytes | BinaryIO
Subtype = Literal["PCM_16", "PCM_24", "FLOAT"]
Format = Literal["wav", "flac"]


def probe_duration(source: AudioSource) -> float:
    """Seconds of audio according to the file header, without decoding the samples."""
    try:
        info = sf.info(_as_file(source))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise UndecodableAudio(f"not a readable audio file: {_reason(exc)}") from exc
    return float(info.frames) / float(info.samplerate) if info.samplerate else 0.0


@dataclass(frozen=True)
class Upload:
    """Audio as the user gave it: audio (channels, L) float32 at sample_rate."""

    audio: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.audio.shape[0])

    def mono(self, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """(L',) float32: the mean of the channels, resampled to `sample_rate`."""
        return resample(to_mono(self.audio.T), self.sample_rate, sample_rate)


def load_audio(
    source: AudioSource,
    *,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    allow_silent: bool = False,
) -> np.ndarray:
    """Decode `source` to float32 mono at `sample_rate`, shape (L,).

    Raises a subclass of AudioError for anything unusable: undecodable bytes, no samples,
    all zeros (unless `allow_silent`), NaN/inf, or longer than `max_seconds` (checked from
    the header before decoding, so a huge file costs nothing).
    """
    upload = load_upload(source, max_seconds=max_seconds, allow_silent=allow_silent)
    return upload.mono(sample_rate)


def load_upload(
    source: AudioSource, *, max_seconds: float | None = None, allow_silent: bool = False
) -> Upload:
    """Decode `source` as given: every channel at its own rate (see `load_audio` for the
    checks; silence is judged on the mean of the channels, what the models hear)."""
    limit = min(max_seconds, ABSURD_SECONDS) if max_seconds is not None else ABSURD_SECONDS
    try:
        with sf.SoundFile(_as_file(source)) as f:
            native_rate = f.samplerate
            if f.frames > 0 and f.frames / native_rate > limit:
                raise AudioTooLong(
                    f"audio is {f.frames / native_rate:.1f} s long; the limit is {limit:.1f} s"
                )
            data = f.read(dtype="float32", always_2d=True)  # (L, channels)
    except AudioTooLong:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        if not ffmpeg.available():
            raise UndecodableAudio(f"not a readable audio file: {_reason(exc)}") from exc
        upload = _load_with_ffmpeg(source, limit)  # m4a, AAC, Opus, ...
        data, native_rate = upload.audio.T, upload.sample_rate
    if data.shape[0] == 0:
        raise EmptyAudio("the audio file holds no samples")
    check_signal(data, allow_silent=True)
    check_signal(to_mono(data), allow_silent=allow_silent)
    return Upload(np.ascontiguousarray(data.T), int(native_rate))


def _load_with_ffmpeg(source: AudioSource, limit: float) -> Upload:
    """What libsndfile refused, through ffmpeg: the duration checked from ffprobe first."""
    if not isinstance(source, str | Path | bytes | bytearray):
        source.seek(0)
        source = source.read()
    found = ffmpeg.probe(bytes(source) if isinstance(source, bytearray) else source)
    if found.duration_seconds > limit:
        raise AudioTooLong(
            f"audio is {found.duration_seconds:.1f} s long; the limit is {limit:.1f} s"
        )
    audio, rate = ffmpeg.decode(
        bytes(source) if isinstance(source, bytearray) else source, found, limit
    )
    return Upload(audio, rate)


def check_signal(audio: np.ndarray, *, allow_silent: bool = False) -> None:
    """Raise if `audio` is empty, non-finite or (unless allowed) all zeros."""
    if audio.size == 0:
        raise EmptyAudio("the audio holds no samples")
    if not np.isfinite(audio).all():
        raise NonFiniteAudio("the audio holds NaN or infinite samples")
    if not allow_silent and not np.any(audio):
        raise SilentAudio("the audio is digital silence: every sample is zero")


def to_mono(data: np.ndarray) -> np.ndarray:
    """(L,) or (L, channels) -> (L,) float32, the mean of the channels."""
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    return data.mean(axis=1, dtype=np.float32)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample (L,) float32 with soxr's high-quality filter; a no-op at equal rates."""
    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


BIT_DEPTHS: dict[str, Subtype] = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}


def output_subtype(format: Format, bit_depth: str | None = None) -> Subtype:
    """The subtype for `bit_depth` ("16", "24", "float"; None: float for wav, 24 for flac);
    ValueError for float FLAC (FLAC holds integers) or an unknown depth."""
    depth = bit_depth or ("float" if format == "wav" else "24")
    if depth not in BIT_DEPTHS:
        raise ValueError(f"bit depth must be one of {', '.join(BIT_DEPTHS)}; got {depth!r}")
    if format == "flac" and depth == "float":
        raise ValueError("FLAC stores 16- or 24-bit integers; use wav for float samples")
    return BIT_DEPTHS[depth]


def write_audio(
    dest: str | Path | BinaryIO,
    audio: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    format: Format = "wav",
    subtype: Subtype = "PCM_16",
) -> None:
    """Write mono (L,) or multichannel (L, channels) float audio as wav or flac.

    FLAC holds integers only, so FLOAT is refused there rather than silently changed.
    Integer subtypes clip to [-1, 1] (libsndfile's behaviour) instead of wrapping.
    """
    if format == "flac" and subtype == "FLOAT":
        raise ValueError("FLAC stores 16- or 24-bit integers; use wav for float samples")
    check_signal(np.asarray(audio), allow_silent=True)
    sf.write(dest, audio, sample_rate, format=format.upper(), subtype=subtype)


def encode_audio(
    audio: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    format: Format = "wav",
    subtype: Subtype = "PCM_16",
) -> bytes:
    """`write_audio` into bytes, for HTTP responses and Redis values."""
    buffer = io.BytesIO()
    write_audio(buffer, audio, sample_rate, format=format, subtype=subtype)
    return buffer.getvalue()


def _as_file(source: AudioSource) -> str | BinaryIO:
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(source)
    if isinstance(source, Path):
        return str(source)
    return source


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
