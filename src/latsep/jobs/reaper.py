"""Recovering the jobs of workers that died mid-job.

A worker SIGKILLed mid-job leaves its entry in rq's StartedJobRegistry, and rq would only
notice after the job's whole timeout. Our workers refresh a registration key every few
seconds, so `reap_abandoned` can tell within `worker_ttl_seconds` that the job's worker is
gone; it then requeues the job once and, if that worker dies too, fails it with a message
saying so. Both the API (periodically) and every worker (at start and on each heartbeat)
run it, under a Redis lock so two reapers never retry the same job twice.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.utils import parse_composite_key

from latsep.jobs.queues import SERIALIZER, fetch_job
from latsep.jobs.store import JobStore

log = logging.getLogger(__name__)

MAX_ABANDON_RETRIES = 1


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
            registry = StartedJobRegistry(name, connection=redis, serializer=SERIALIZER)
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
