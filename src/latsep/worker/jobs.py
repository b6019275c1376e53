"""The RQ job function: `latsep.worker.jobs.separate_job(job_id)`.

Its only argument is the job id; the request and the uploaded audio wait in Redis (see
`latsep.jobs.store`). Progress and stage go to the rq job's meta, where the API reads them;
a cancellation request is noticed at the next progress report and stops the job.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import OutOfMemoryError
from rq import get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException

from latsep.audio import AudioError, encode_audio
from latsep.jobs import JobStore
from latsep.jobs.limits import DecodeLimits
from latsep.worker import pipeline, runtime
from latsep.worker.routing import UnservableRequest

log = logging.getLogger(__name__)


# The stage a job's meta ends in when its client canceled it (the worker files it as such).
CANCELED_STAGE = "canceled"


class JobCanceled(Exception):
    """The client asked to cancel this job while it ran."""


class JobInputMissing(Exception):
    """The request or the upload expired (or was deleted) before the job ran."""


class ProgressReporter:
    """Writes progress to the job's meta at most every `interval` s; raises on cancellation."""

    def __init__(self, job: Job, store: JobStore, interval: float) -> None:
        self.job, self.store, self.interval = job, store, interval
        self._last_write = 0.0
        self._stage = ""
        self._started: float | None = None

    def __call__(self, fraction: float, stage: str) -> None:
        if self.store.is_cancel_requested(self.job.id):
            raise JobCanceled(f"job {self.job.id} was canceled")
        now = time.monotonic()
        if self._started is None:
            self._started = now
        # A step's stage text carries its counts: the stage's name decides a write.
        name = stage.split(" ", 1)[0] if stage[:1].isalpha() else stage
        if name == self._stage and now - self._last_write < self.interval and fraction < 1.0:
            return
        self._stage, self._last_write = name, now
        self.job.meta.update(
            progress=round(float(fraction), 4),
            stage=stage,
            eta_seconds=eta(now - self._started, fraction),
        )
        self.job.save_meta()


def eta(elapsed: float, fraction: float) -> float | None:
    """Seconds left at this pace (elapsed · (1 − f) / f); None before 2 % is done."""
    if fraction < 0.02 or elapsed <= 0:
        return None
    return round(max(0.0, elapsed * (1.0 - fraction) / fraction), 1)


def separate_job(job_id: str) -> dict[str, object]:
    """Separate the uploaded mixture of `job_id`; stems and result land in Redis."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("separate_job runs inside an rq worker")
    context = runtime.current(job.connection)
    store, settings = context.store, context.settings
    started = time.perf_counter()
    method = "unknown"
    try:
        request = store.fetch_request(job_id)
        mixture = store.fetch_mixture(job_id)
        if request is None or mixture is None:
            raise JobInputMissing("the upload expired or was deleted before the job ran")
        method = request.method
        references = {}
        for source in request.references:
            data = store.fetch_reference(job_id, source)
            if data is None:
                raise JobInputMissing(f"the reference for {source} expired before the job ran")
            references[source] = data
        reporter = ProgressReporter(job, store, settings.progress_interval_seconds)
        outcome = pipeline.run(
            context.engine,
            request.method,
            request.sources,
            mixture,
            request.resolved or request.options,
            references=references,
            max_seconds=settings.max_duration_seconds,
            progress=reporter,
            default_num_candidates=settings.default_num_candidates,
            limits=DecodeLimits.from_settings(settings),
        )
        sr = outcome.result.sample_rate
        start = time.perf_counter()
        # Float WAV keeps the stems' sum equal to the mixture; the API transcodes on download.
        # One stem at a time, its float array dropped once encoded (each is its own array):
        # a long upload's stems are not held twice over.
        stems = {}
        for source in list(outcome.stems):
            audio = outcome.stems.pop(source)
            stems[source] = encode_audio(audio, sr, format="wav", subtype="FLOAT")
            del audio
        result = outcome.result
        result.timings["encode_s"] = round(time.perf_counter() - start, 4)
        result.timings["total_s"] = round(time.perf_counter() - started, 4)
        store.save_result(job_id, result, stems, settings.result_ttl_seconds)
        store.delete_uploads(job_id, request.references)
    except JobCanceled:
        _fail(job, store, method, started, "canceled", "canceled by the client", CANCELED_STAGE)
        raise
    except JobTimeoutException:
        message = f"the job ran longer than its timeout of {job.timeout} s"
        _fail(job, store, method, started, "failed", message, "timed out")
        raise
    except (AudioError, UnservableRequest, JobInputMissing, ValueError) as exc:
        _fail(job, store, method, started, "failed", str(exc), "failed")
        raise
    except OutOfMemoryError:
        # Redis at its maxmemory (noeviction) refused the stems: say so, not "internal error".
        message = (
            "the job store (Redis) is full: the stems could not be kept; submit it again later"
        )
        _fail(job, store, method, started, "failed", message, "failed")
        raise
    except Exception as exc:
        log.exception("job %s failed", job_id)
        message = f"internal error: {type(exc).__name__}: {exc}"
        _fail(job, store, method, started, "failed", message, "failed")
        raise
    store.record_job_outcome(method, "finished", time.perf_counter() - started)
    return {"job_id": job_id, "sources": result.sources}


def _fail(
    job: Job, store: JobStore, method: str, started: float, status: str, message: str, stage: str
) -> None:
    job.meta.update(error=message, stage=stage)
    try:
        job.save_meta()
        store.record_job_outcome(method, status, time.perf_counter() - started)
    except Exception:  # Redis trouble must not hide the job's own error
        log.exception("could not record the failure of job %s", job.id)
