"""Results of a job: its stems (one at a time or zipped) and its progress as events."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal

import anyio
import soundfile as sf
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from latsep.jobs import JobStore
from latsep.service.deps import SettingsDep, StoreDep
from latsep.service.errors import (
    STORE_UNAVAILABLE,
    ApiError,
    bad_parameter,
    error_responses,
    not_found,
)
from latsep.service.views import finished_request, job_public, load_job

log = logging.getLogger(__name__)
router = APIRouter(tags=["results"])

_CHUNK = 1 << 16
AudioFormat = Literal["wav", "flac"]
BitDepth = Literal["16", "24", "float"]
_SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}
FormatQuery = Annotated[
    AudioFormat,
    Query(description="wav or flac; stems keep the upload's sample rate and channels"),
]
BitDepthQuery = Annotated[
    BitDepth | None,
    Query(
        description="16, 24 or float (wav only; FLAC holds integers). Default: float for wav, "
        "24 for flac. Float keeps the stems' sum equal to the upload; integers clip at ±1"
    ),
]


@router.get(
    "/jobs/{job_id}/stems/{source}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"audio/wav": {}, "audio/flac": {}}, "description": "the stem"},
        **error_responses(404, 409, 422),
    },
)
def get_stem(
    job_id: str,
    source: str,
    store: StoreDep,
    format: FormatQuery = "wav",
    bit_depth: BitDepthQuery = None,
) -> StreamingResponse:
    """Stream one separated source at the upload's sample rate, with its channels."""
    subtype = _subtype(format, bit_depth)
    request = finished_request(store, job_id)
    if source not in request.sources:
        raise not_found(f"job {job_id} has no source {source!r} ({', '.join(request.sources)})")
    data = _transcode(_stem_bytes(store, job_id, source), format, subtype)
    return _attachment(data, f"audio/{format}", f"{job_id}-{source}.{format}")


@router.get(
    "/jobs/{job_id}/stems.zip",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}, **error_responses(404, 409, 422)},
)
def get_stems_zip(
    job_id: str, store: StoreDep, format: FormatQuery = "wav", bit_depth: BitDepthQuery = None
) -> StreamingResponse:
    """All stems of a finished job in one zip (float32 WAVs unless `format`/`bit_depth`
    say otherwise)."""
    subtype = _subtype(format, bit_depth)
    request = finished_request(store, job_id)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for source in request.sources:
            data = _transcode(_stem_bytes(store, job_id, source), format, subtype)
            archive.writestr(f"{source}.{format}", data)
    return _attachment(buffer.getvalue(), "application/zip", f"{job_id}-stems.zip")


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **error_responses(404)},
)
async def job_events(
    job_id: str, request: Request, store: StoreDep, settings: SettingsDep
) -> StreamingResponse:
    """Server-sent events: `progress` while queued or running, then one final event named
    after the end state (`finished`, `failed`, `canceled`) carrying the whole job, and EOF;
    or an `error` event and EOF when the job vanishes or the job store fails meanwhile.
    """
    await run_in_threadpool(load_job, store, job_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[bytes]:
        last: tuple[str, float, str] | None = None
        idle = 0.0
        yield b"retry: 2000\n\n"
        while True:
            try:
                public = await run_in_threadpool(job_public, store, job_id)
            except ApiError as exc:  # deleted or expired while we watched
                yield _event("error", {"message": exc.message})
                return
            except RedisError as exc:
                # The 200 and its headers are sent: the stream can only end, and say why,
                # so a client does not take a cut connection for a job still running.
                log.warning("events of job %s: Redis error: %r", job_id, exc)
                yield _event("error", {"message": STORE_UNAVAILABLE})
                return
            payload = public.model_dump(mode="json")
            if public.status in ("finished", "failed", "canceled"):
                yield _event(public.status, payload)
                return
            key = (public.status, public.progress, public.stage)
            if key != last:
                last, idle = key, 0.0
                yield _event("progress", payload)
            elif idle >= 15.0:
                idle = 0.0
                yield b": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await anyio.sleep(settings.sse_poll_seconds)
            idle += settings.sse_poll_seconds

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _subtype(format: AudioFormat, bit_depth: BitDepth | None) -> str:
    if bit_depth is None:
        bit_depth = "float" if format == "wav" else "24"
    if format == "flac" and bit_depth == "float":
        raise bad_parameter("FLAC stores 16- or 24-bit integers; ask for wav to get float")
    return _SUBTYPES[bit_depth]


def _transcode(wav: bytes, format: AudioFormat, subtype: str) -> bytes:
    """The stored float32 WAV as asked; as stored when that is what was asked."""
    if format == "wav" and subtype == "FLOAT":
        return wav
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    out = io.BytesIO()
    sf.write(out, audio, rate, format=format.upper(), subtype=subtype)  # integers clip at ±1
    return out.getvalue()


def _chunks(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        yield bytes(view[start : start + _CHUNK])


def _stem_bytes(store: JobStore, job_id: str, source: str) -> bytes:
    """A finished job's stem as stored (float32 WAV); 404 once its TTL has passed."""
    data = store.fetch_stem(job_id, source)
    if data is None:
        raise not_found(f"the stems of job {job_id} expired")
    return data


def _attachment(payload: bytes, media_type: str, filename: str) -> StreamingResponse:
    return StreamingResponse(
        _chunks(payload),
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Length": str(len(payload)),
        },
    )
