"""A job's public state, read from rq's job hash, the meta the worker writes, our cancel flag."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from rq.job import Job, JobStatus

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


# Python object reprs (`<_io.BytesIO object at 0x7f…>`) and libsndfile's "Error opening X: "
# prefix around them say nothing to a client and leak addresses of the process.
_OBJECT_REPR = re.compile(r"(Error opening )?<[^<>]* at 0x[0-9a-fA-F]+>:?\s*")


def user_facing(text: str) -> str:
    """`text` without the internals some libraries put in their messages."""
    return _OBJECT_REPR.sub("", text).strip() or "unreadable"


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
    eta_seconds: float | None = None


def job_state(job: Job, cancel_requested: bool) -> JobState:
    status = _STATUS_MAP.get(job.get_status(refresh=False), "queued")
    if cancel_requested and status == "failed":
        status = "canceled"  # the worker stops a canceled job by raising JobCanceled
    meta = job.meta or {}
    progress = 1.0 if status == "finished" else float(meta.get("progress", 0.0))
    error = None
    if status == "failed":
        error = meta.get("error") or _last_line(_exc_string(job)) or "the job failed"
        error = user_facing(str(error))
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
        eta_seconds=_eta(meta.get("eta_seconds")) if status == "started" else None,
    )


def _eta(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def _exc_string(job: Job) -> str:
    result = job.latest_result()
    return (result.exc_string or "") if result is not None else ""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _ts(value: object) -> float | None:
    timestamp = getattr(value, "timestamp", None)
    return float(timestamp()) if callable(timestamp) else None
