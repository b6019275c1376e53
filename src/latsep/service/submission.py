"""Turning an upload into a queued job: references, audio checks, storage, enqueueing."""

from __future__ import annotations

import math

from fastapi import Request
from redis.exceptions import OutOfMemoryError
from starlette.datastructures import UploadFile

from latsep.audio import AudioError
from latsep.jobs import (
    JobRequest,
    JobStore,
    ResolvedOptions,
    SeparationOptions,
    enqueue_separation,
    queue_depth,
    queue_name,
)
from latsep.jobs.admission import MemoryBudget, NotAdmitted, admitted
from latsep.jobs.limits import DecodeLimits
from latsep.methods import METHODS, option_problem
from latsep.service.errors import bad_parameter, from_audio_error, unavailable
from latsep.service.uploads import AudioInfo, inspect_audio
from latsep.settings import Settings

REFERENCE_PREFIX = "reference_"


async def referenced_sources(request: Request) -> list[str]:
    """The sources the `reference_<source>` fields name, in the order given."""
    form = await request.form()
    keys = [k for k, _ in form.multi_items() if k.startswith(REFERENCE_PREFIX)]
    return list(dict.fromkeys(k[len(REFERENCE_PREFIX) :] for k in keys))


async def reference_uploads(request: Request, sources: list[str]) -> dict[str, UploadFile]:
    form = await request.form()  # already parsed (and size-limited) for the declared fields
    out: dict[str, UploadFile] = {}
    for key, value in form.multi_items():
        if not key.startswith(REFERENCE_PREFIX):
            continue
        source = key[len(REFERENCE_PREFIX) :]
        if source not in sources:
            raise bad_parameter(
                f"{key}: {source!r} is not among the separated sources ({', '.join(sources)})"
            )
        if not isinstance(value, UploadFile):
            raise bad_parameter(f"{key} must be a file")
        if source in out:
            raise bad_parameter(f"{key} was given twice")
        out[source] = value
    if out and len(out) != len(sources):
        missing = [f"{REFERENCE_PREFIX}{s}" for s in sources if s not in out]
        raise bad_parameter(f"give a reference for every source or none; missing {missing}")
    return out


def check_options(
    method: str, options: SeparationOptions | ResolvedOptions, num_sources: int = 2
) -> None:
    """Reject option combinations the separation engine refuses (`option_problem`), before
    anything is queued: a job asking otherwise would be accepted here and then fail in the
    worker."""
    problem = option_problem(
        method,
        num_sources,
        search=options.search,
        temperature=options.temperature,
        likelihood_weight=options.likelihood_weight,
        top_k=options.top_k,
    )
    if problem is not None:
        raise bad_parameter(problem)


def accept(
    settings: Settings,
    store: JobStore,
    request: JobRequest,
    mixture: bytes,
    references: dict[str, bytes],
) -> None:
    """Check the options and the audio, then store it and enqueue the job (in a thread: it
    decodes)."""
    check_options(request.method, request.options, len(request.sources))
    limits = DecodeLimits.from_settings(settings)
    try:
        info = inspect_audio(mixture, settings.max_duration_seconds, limits=limits)
    except AudioError as exc:
        raise from_audio_error(exc, "file") from exc
    for source, data in references.items():
        try:
            inspect_audio(data, settings.max_duration_seconds, allow_silent=True, limits=limits)
        except AudioError as exc:
            raise from_audio_error(exc, f"{REFERENCE_PREFIX}{source}") from exc
    request.duration_seconds = round(info.duration_seconds, 4)
    ttl = settings.upload_ttl_seconds + settings.result_ttl_seconds
    # The cap counts every latsep queue, so a method's queue that does not exist yet counts too.
    queues = {queue_name(settings.queue_name, m) for m in METHODS}
    queues |= set(queue_depth(store.redis, settings.queue_name))
    budget = MemoryBudget(settings.redis_memory_budget_bytes, settings.redis_memory_high_water)
    try:
        with admitted(
            store.redis,
            settings.namespace,
            sorted(queues),
            request.job_id,
            settings.max_queue_depth,
            cost_bytes=request.upload_bytes + stems_bytes(info, len(request.sources)),
            budget=budget,
        ):
            store.save_request(request, ttl)
            store.save_upload(request.job_id, mixture, references, settings.upload_ttl_seconds)
            enqueue_separation(
                store.redis,
                request,
                timeout=settings.job_timeout(info.duration_seconds),
                result_ttl=settings.result_ttl_seconds,
                queued_ttl=settings.upload_ttl_seconds,
            )
    except NotAdmitted as exc:
        if exc.decision.reason == "memory":
            raise unavailable(STORE_FULL) from exc
        depth = exc.decision.depth
        raise unavailable(f"the queue is full ({depth} jobs waiting); try again later") from exc
    except OutOfMemoryError as exc:  # Redis refused a write all the same (another client)
        store.delete_job(request.job_id, request.sources)
        raise unavailable(STORE_FULL) from exc


STORE_FULL = "the job store is full (uploads and stems wait in it); try again later"


def stems_bytes(info: AudioInfo, num_sources: int) -> int:
    """What a job's stems will take in Redis: float32 WAVs, one per source, at the upload's
    rate and channels or the models' 22,050 Hz, whichever is larger (an upper bound)."""
    rate = max(info.sample_rate, 22_050)
    return num_sources * (math.ceil(info.duration_seconds * rate) * info.channels * 4 + 1024)
