"""RQ on our terms: one queue per method, JSON serialisation, jobs named by dotted path.

A job carries only its id; the audio waits in Redis under the job store's keys. The API
enqueues by name, so it never imports the worker (nor torch).
"""

from __future__ import annotations

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from latsep.jobs.records import JobRequest

JOB_FUNCTION = "latsep.worker.jobs.separate_job"
# Every rq object of ours (queues, jobs, registries, the worker) reads and writes job
# payloads as JSON: nothing in Redis is unpickled.
SERIALIZER = JSONSerializer


def queue_name(prefix: str, method: str) -> str:
    """The queue of one method: workers listen only on the methods they serve."""
    return f"{prefix}.{method}"


def make_queue(redis: Redis, name: str) -> Queue:
    return Queue(name, connection=redis, serializer=SERIALIZER)


def latsep_queues(redis: Redis, prefix: str) -> list[Queue]:
    """Every queue of ours that exists in Redis."""
    return [
        q
        for q in Queue.all(connection=redis, serializer=SERIALIZER)
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
        return Job.fetch(job_id, connection=redis, serializer=SERIALIZER)
    except NoSuchJobError:
        return None
