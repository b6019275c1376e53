"""RQ on our terms: one queue per method, JSON serialisation, public job states, a reaper.

Jobs name their function by dotted path and carry only their id; the audio waits in Redis
under the job store's keys. The API and the workers both import this module (no torch here).

Crash handling: a worker SIGKILLed mid-job leaves its entry in rq's StartedJobRegistry, and
rq would only notice after the job's whole timeout. Our workers refresh a registration key
every few seconds, so `reap_abandoned` can tell within `worker_ttl_seconds` that the job's
worker is gone; it then requeues the job once and, if that worker dies too, fails it with a
message saying so. Both the API (periodically) and every worker (at start and on each
heartbeat) run it, under a Redis lock so two reapers never retry the same job twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import parse_composite_key

from latsep.service.store import JobRequest, JobStore

log = logging.getLogger(__name__)

JOB_FUNCTION = "latsep.worker.jobs.separate_job"
MAX_ABANDON_RETRIES = 1

PublicStatus = Literal["queued", "started", "finished", "failed", "canceled"]

_STATUS_MAP: dict[JobStatus, PublicStatus] = {
    JobStatus.QUEUED: "queued",
    JobStatus.DEFERRED: "queued",
    JobStatus.SCHEDULED: "queued",
    JobStatus.CREATED: "queued",
    JobStatus.STARTED: "started",
    JobStatus.FINISHED: "finished",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "canceled",
    JobStatus.STOPPED: "canceled",
}


def queue_name(prefix: str, method: str) -> str:
    """The queue of one method: workers listen only on the methods they serve."""
    return f"{prefix}.{method}"


def make_queue(redis: Redis, name: str) -> Queue:
    return Queue(name, connection=redis, serializer=JSONSerializer)


def latsep_queues(redis: Redis, prefix: str) -> list[Queue]:
    """Every queue of ours that exists in Redis."""
    return [
        q
        for q in Queue.all(connection=redis, serializer=JSONSerializer)
        if q.name.startswith(prefix + ".")
    ]


def queue_depth(redis: Redis, prefix: str) -> dict[str, int]:
    return {q.name: q.count for q in latsep_queues(redis, prefix)}


def enqueue_separation(
    redis: Redis, request: JobRequest, *, timeout: int, result_ttl: int, queued_ttl: int
) -> Job:
    """Enqueue the job function with the job id as its only argument."""
    queue = make_queue(redis, request.queue)
    return queue.enqueue(
        JOB_FUNCTION,
        args=(request.job_id,),
        job_id=request.job_id,
        job_timeout=timeout,
        result_ttl=result_ttl,
        failure_ttl=result_ttl,
        ttl=queued_ttl,
        description=f"{request.method} {request.filename}".strip(),
        meta={"progress": 0.0, "stage": "queued"},
    )


def fetch_job(redis: Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


@dataclass(frozen=True)
class JobState:
    """A job's public state, read from rq's job hash and our cancel flag."""

    status: PublicStatus
    progress: float
    stage: str
    error: str | None
    enqueued_at: float | None
    started_at: float | None
    ended_at: float | None
    worker: str | None
    cancel_requested: bool


def job_state(job: Job, cancel_requested: bool) -> JobState:
    status = _STATUS_MAP.get(job.get_status(refresh=False), "queued")
    if cancel_requested and status == "failed":
        status = "canceled"  # the worker stops a canceled job by raising JobCanceled
    meta = job.meta or {}
    progress = 1.0 if status == "finished" else float(meta.get("progress", 0.0))
    error = None
    if status == "failed":
        error = meta.get("error") or _last_line(_exc_string(job)) or "the job failed"
    return JobState(
        status=status,
        progress=max(0.0, min(1.0, progress)),
        stage=str(meta.get("stage", status)),
        error=error,
        enqueued_at=_ts(job.enqueued_at),
        started_at=_ts(job.started_at),
        ended_at=_ts(job.ended_at),
        worker=job.worker_name or None,
        cancel_requested=cancel_requested,
    )


def reap_abandoned(redis: Redis, store: JobStore, queue_names: list[str]) -> list[str]:
    """Requeue (once) or fail the started jobs whose worker stopped heartbeating.

    Returns the ids of the jobs it handled.
    """
    lock = redis.lock(store.key_for("lock", "reaper"), timeout=30, blocking_timeout=0)
    if not lock.acquire(blocking=False):
        return []
    handled: list[str] = []
    try:
        for name in queue_names:
            registry = StartedJobRegistry(name, connection=redis, serializer=JSONSerializer)
            for entry in redis.zrange(registry.key, 0, -1):
                text = entry.decode() if isinstance(entry, bytes) else str(entry)
                job_id, _ = parse_composite_key(text)
                job = fetch_job(redis, job_id)
                if job is not None and store.is_worker_alive(job.worker_name or ""):
                    continue
                if job is not None:
                    _prepare_abandoned(redis, store, job)
                # Score 0 marks the entry expired; rq's cleanup then retries or fails it.
                redis.zadd(registry.key, {text: 0}, xx=True)
                handled.append(job_id)
            if handled:
                registry.cleanup(timestamp=1)
    finally:
        try:
            lock.release()
        except Exception:  # the lock timed out: another reaper may run now, harmless
            log.debug("reaper lock already released")
    for job_id in handled:
        log.warning("job %s: its worker stopped; requeued or failed", job_id)
    return handled


def _prepare_abandoned(redis: Redis, store: JobStore, job: Job) -> None:
    """Count the loss and set rq's retries_left so cleanup retries once, then fails."""
    meta = job.get_meta(refresh=True)
    losses = int(meta.get("worker_losses", 0)) + 1
    meta["worker_losses"] = losses
    retry = losses <= MAX_ABANDON_RETRIES and not store.is_cancel_requested(job.id)
    if retry:
        meta.update(progress=0.0, stage="requeued: its worker stopped")
    else:
        meta["error"] = (
            f"the worker running this job stopped (crashed or was killed) {losses} time(s); "
            "the job was given up"
        )
    job.meta = meta
    job.save_meta()
    redis.hset(job.key, "retries_left", 1 if retry else 0)


def _exc_string(job: Job) -> str:
    result = job.latest_result()
    return (result.exc_string or "") if result is not None else ""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _ts(value: object) -> float | None:
    timestamp = getattr(value, "timestamp", None)
    return float(timestamp()) if callable(timestamp) else None
