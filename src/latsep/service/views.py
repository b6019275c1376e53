"""A job as the API shows it, assembled from the request, rq's state and the result."""

from __future__ import annotations

from latsep.jobs import (
    JobRequest,
    JobState,
    JobStore,
    SeparationOptions,
    fetch_job,
    job_state,
    reap_abandoned,
)
from latsep.service.errors import not_found, not_ready
from latsep.service.schemas import JobPublic, StemLinks, Timings


def job_public(store: JobStore, job_id: str) -> JobPublic:
    request, state = load_job(store, job_id)
    result = store.fetch_result(job_id) if state.status == "finished" else None
    base = f"/jobs/{job_id}"
    timings = Timings(
        submitted_at=request.submitted_at,
        enqueued_at=state.enqueued_at,
        started_at=state.started_at,
        ended_at=state.ended_at,
        queue_wait_s=_diff(state.started_at, state.enqueued_at),
        run_s=_diff(state.ended_at, state.started_at),
        stages=dict(result.timings) if result else {},
    )
    public = JobPublic(
        job_id=job_id,
        status=state.status,
        progress=state.progress,
        stage=state.stage,
        eta_seconds=state.eta_seconds,
        cancel_requested=state.cancel_requested,
        error=state.error,
        method=request.method,
        sources=request.sources,
        # The worker's record of what ran wins over what the API resolved at submission.
        options=SeparationOptions(**result.options.model_dump())
        if result is not None and result.options is not None
        else request.options,
        filename=request.filename,
        duration_seconds=request.duration_seconds,
        timings=timings,
        events_url=f"{base}/events",
    )
    if result is not None:
        public.sample_rate = result.sample_rate
        public.channels = result.channels
        public.bundle = result.bundle
        public.device = result.device
        public.chosen_candidate = result.chosen_candidate
        public.candidate_consistency = result.candidate_consistency
        public.stems = {
            s: StemLinks(wav=f"{base}/stems/{s}?format=wav", flac=f"{base}/stems/{s}?format=flac")
            for s in result.sources
        }
        public.zip_url = f"{base}/stems.zip"
        public.sdr, public.si_sdr, public.oracle = result.sdr, result.si_sdr, result.oracle
    return public


def load_job(store: JobStore, job_id: str) -> tuple[JobRequest, JobState]:
    request = store.fetch_request(job_id)
    job = fetch_job(store.redis, job_id) if request is not None else None
    if request is None or job is None:
        raise not_found(f"no job {job_id!r} (unknown, expired or deleted)")
    state = job_state(job, store.is_cancel_requested(job_id))
    if state.status == "started" and not store.is_worker_alive(state.worker or ""):
        # Its worker died: requeue or fail it now rather than at the next periodic sweep.
        reap_abandoned(store.redis, store, [request.queue])
        job = fetch_job(store.redis, job_id) or job
        state = job_state(job, store.is_cancel_requested(job_id))
    return request, state


def _diff(end: float | None, start: float | None) -> float | None:
    return round(end - start, 4) if end is not None and start is not None else None


def finished_request(store: JobStore, job_id: str) -> JobRequest:
    request, state = load_job(store, job_id)
    if state.status != "finished":
        detail = f": {state.error}" if state.error else ""
        raise not_ready(f"job {job_id} is {state.status}{detail}; stems exist once it is finished")
    return request
