"""Upload limits, enforced while the bytes arrive, and checks of the uploaded audio.

`BodyLimitMiddleware` refuses a request whose Content-Length exceeds the byte limit before
reading it, and counts the bytes of the others as they stream in (chunked uploads lie about
nothing because they declare nothing): the multipart parser never sees more than the limit.
`inspect_audio` then reads the file's header for its duration (413 when too long, before
decoding) and decodes it block by block to refuse truncated, empty, silent or NaN audio;
uncompressed containers are checked for truncation from their headers (`containers`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from latsep.audio import (
    AudioError,
    AudioTooLong,
    EmptyAudio,
    NonFiniteAudio,
    SilentAudio,
    UndecodableAudio,
    ffmpeg,
)
from latsep.jobs.limits import DecodeLimits
from latsep.service.containers import missing_data_bytes
from latsep.service.errors import error_body, too_large, user_facing

_BLOCK_FRAMES = 1 << 16


class BodyLimitMiddleware:
    """413 for request bodies over `max_bytes`, decided without buffering them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, declared)
            return
        received = 0
        limit = self.max_bytes

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI re-raises it from body parsing -> JSON 413.
                    raise too_large(f"the upload exceeds the limit of {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, send: Send, declared: int) -> None:
        body = json.dumps(
            error_body(
                413,
                "too_large",
                f"the upload is {declared} bytes; the limit is {self.max_bytes} bytes",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class AudioInfo:
    duration_seconds: float
    sample_rate: int
    channels: int
    frames: int


def inspect_audio(
    data: bytes,
    max_seconds: float,
    *,
    allow_silent: bool = False,
    limits: DecodeLimits | None = None,
) -> AudioInfo:
    """Check that `data` is usable audio no longer than `max_seconds`; raise AudioError if not.

    The duration, channels and sample rate come from the header first (a 10-hour file or
    one that would decode to gigabytes is refused unread); then every block is decoded, so
    a truncated or corrupt file fails here rather than in the worker, and a file whose header
    hides its length (a stream) is cut off at the limits as it decodes.
    """
    if not data:
        raise UndecodableAudio("the file is empty (0 bytes)")
    missing = missing_data_bytes(data)
    if missing:  # libsndfile would decode what is there as a shorter recording
        raise UndecodableAudio(
            f"the file is truncated: its header announces {missing} more bytes of audio "
            "than it holds"
        )
    try:
        duration = _header_duration(data)
    except UndecodableAudio:
        if not ffmpeg.available():
            raise
        return _inspect_with_ffmpeg(data, max_seconds, allow_silent, limits)
    if duration > max_seconds:
        raise AudioTooLong(f"audio is {duration:.1f} s long; the limit is {max_seconds:.1f} s")
    frames = 0
    peak = 0.0
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels, declared = f.samplerate, f.channels, f.frames
            if limits is not None:
                limits.check_format(channels, rate)
                if 0 < declared < 2**62:
                    limits.check_samples(declared, channels, rate)
            for block in f.blocks(blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    raise NonFiniteAudio("the audio holds NaN or infinite samples")
                frames += block.shape[0]
                if block.size:
                    peak = max(peak, float(np.abs(block).max()))
                if frames / rate > max_seconds:
                    raise AudioTooLong(f"audio is longer than the limit of {max_seconds:.1f} s")
                if limits is not None:
                    limits.check_samples(frames, channels, rate)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        if isinstance(exc, AudioError):
            raise
        raise UndecodableAudio(f"not a readable audio file: {_reason(exc)}") from exc
    if frames == 0:
        raise EmptyAudio("the audio file holds no samples")
    if 0 < declared < 2**62 and frames < declared:
        raise UndecodableAudio(
            f"the file is truncated: its header announces {declared} frames, {frames} decode"
        )
    if peak == 0.0 and not allow_silent:
        raise SilentAudio("the audio is digital silence: every sample is zero")
    return AudioInfo(frames / rate, rate, channels, frames)


def _inspect_with_ffmpeg(
    data: bytes, max_seconds: float, allow_silent: bool, limits: DecodeLimits | None
) -> AudioInfo:
    """What libsndfile cannot read (m4a, AAC, Opus, ...): ffprobe's duration, channels and
    rate are checked against the limits before ffmpeg decodes, and the decode stops at the
    duration limit whatever the header said."""
    found = ffmpeg.probe(data)
    if found.duration_seconds > max_seconds:
        raise AudioTooLong(
            f"audio is {found.duration_seconds:.1f} s long; the limit is {max_seconds:.1f} s"
        )
    if limits is not None:
        limits.check_format(found.channels, found.sample_rate)
        if found.duration_seconds > 0:
            frames = int(found.duration_seconds * found.sample_rate)
            limits.check_samples(frames, found.channels, found.sample_rate)
    audio, rate = ffmpeg.decode(data, found, max_seconds)  # (channels, L)
    frames = audio.shape[1]
    if limits is not None:
        limits.check_samples(frames, found.channels, rate)
    if frames == 0:
        raise EmptyAudio("the audio file holds no samples")
    if not np.isfinite(audio).all():
        raise NonFiniteAudio("the audio holds NaN or infinite samples")
    if not allow_silent and not np.any(audio):
        raise SilentAudio("the audio is digital silence: every sample is zero")
    return AudioInfo(frames / rate, rate, found.channels, frames)


def _header_duration(data: bytes) -> float:
    """Seconds of audio according to the header, without decoding the samples."""
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise UndecodableAudio(f"not a readable audio file: {_reason(exc)}") from exc
    return float(info.frames) / float(info.samplerate) if info.samplerate else 0.0


def _reason(exc: Exception) -> str:
    """libsndfile's own words ("Format not recognised."), not its message, which names our
    in-memory buffer (`Error opening <_io.BytesIO object at 0x…>`)."""
    text = getattr(exc, "error_string", None) or str(exc).strip()
    text = text.splitlines()[-1] if text else type(exc).__name__
    return user_facing(text)
