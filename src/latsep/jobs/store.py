"""The Redis key layout and typed access to it: where a job's records and bytes live.

Every key sits under the settings' namespace (`latsep:` by default) and has a TTL:

    <ns>:job:<id>                 JobRequest (JSON): what was asked, by whom, when
    <ns>:upload:<id>:mixture      the uploaded file's bytes, as uploaded
    <ns>:upload:<id>:ref:<src>    a reference stem's bytes, as uploaded
    <ns>:result:<id>              JobResult (JSON): timings, SDR, chosen candidate
    <ns>:stem:<id>:<src>          a separated stem, float32 WAV at the bundle's rate
    <ns>:cancel:<id>              present when cancellation was requested
    <ns>:worker:<name>            WorkerInfo (JSON); its TTL is the worker's heartbeat
    <ns>:metrics:...              counters and duration histograms written by workers

Only redis and pydantic are imported here, so both the API (no torch) and the worker use it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from pydantic import ValidationError
from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from latsep.jobs.capabilities import WorkerInfo
from latsep.jobs.records import JobRequest, JobResult

log = logging.getLogger(__name__)

# Upper bounds (seconds) of the job-duration histogram buckets; +Inf is implicit.
DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class JobStore:
    """Typed access to the keys above. One instance per process; the Redis client is shared."""

    def __init__(self, redis: Redis, namespace: str = "latsep") -> None:
        self.redis = redis
        self.namespace = namespace

    # --- keys --------------------------------------------------------------------------------
    def key_for(self, kind: str, *parts: str) -> str:
        return ":".join((self.namespace, kind, *parts))

    # --- requests ----------------------------------------------------------------------------
    def save_request(self, request: JobRequest, ttl: int) -> None:
        self.redis.set(self.key_for("job", request.job_id), request.model_dump_json(), ex=ttl)

    def fetch_request(self, job_id: str) -> JobRequest | None:
        raw = self.redis.get(self.key_for("job", job_id))
        return JobRequest.model_validate_json(raw) if raw else None

    # --- uploads -----------------------------------------------------------------------------
    def save_upload(
        self, job_id: str, mixture: bytes, references: dict[str, bytes], ttl: int
    ) -> None:
        with self.redis.pipeline() as pipe:
            pipe.set(self.key_for("upload", job_id, "mixture"), mixture, ex=ttl)
            for source, data in references.items():
                pipe.set(self.key_for("upload", job_id, "ref", source), data, ex=ttl)
            pipe.execute()

    def fetch_mixture(self, job_id: str) -> bytes | None:
        return self._get_bytes(self.key_for("upload", job_id, "mixture"))

    def fetch_reference(self, job_id: str, source: str) -> bytes | None:
        return self._get_bytes(self.key_for("upload", job_id, "ref", source))

    def delete_uploads(self, job_id: str, sources: Iterable[str]) -> None:
        keys = [self.key_for("upload", job_id, "mixture")]
        keys += [self.key_for("upload", job_id, "ref", s) for s in sources]
        self.redis.delete(*keys)

    # --- results -----------------------------------------------------------------------------
    def save_result(
        self, job_id: str, result: JobResult, stems: dict[str, bytes], ttl: int
    ) -> None:
        """Stems first, summary last, in one transaction: a visible result has all its stems."""
        with self.redis.pipeline(transaction=True) as pipe:
            for source, data in stems.items():
                pipe.set(self.key_for("stem", job_id, source), data, ex=ttl)
            pipe.set(self.key_for("result", job_id), result.model_dump_json(), ex=ttl)
            pipe.expire(self.key_for("job", job_id), ttl)
            pipe.execute()

    def fetch_result(self, job_id: str) -> JobResult | None:
        raw = self.redis.get(self.key_for("result", job_id))
        return JobResult.model_validate_json(raw) if raw else None

    def fetch_stem(self, job_id: str, source: str) -> bytes | None:
        return self._get_bytes(self.key_for("stem", job_id, source))

    # --- cancellation ------------------------------------------------------------------------
    def request_cancel(self, job_id: str, ttl: int) -> None:
        self.redis.set(self.key_for("cancel", job_id), b"1", ex=ttl)

    def is_cancel_requested(self, job_id: str) -> bool:
        return bool(self.redis.exists(self.key_for("cancel", job_id)))

    def delete_job(self, job_id: str, sources: Sequence[str]) -> None:
        """Forget everything latsep keeps about a job (rq's own keys are the caller's)."""
        keys = [
            self.key_for("job", job_id),
            self.key_for("result", job_id),
            self.key_for("cancel", job_id),
            self.key_for("upload", job_id, "mixture"),
        ]
        for source in sources:
            keys += [
                self.key_for("stem", job_id, source),
                self.key_for("upload", job_id, "ref", source),
            ]
        self.redis.delete(*keys)

    # --- workers -----------------------------------------------------------------------------
    def register_worker(self, info: WorkerInfo, ttl_seconds: float) -> None:
        info = info.model_copy(update={"heartbeat_at": time.time()})
        self.redis.set(
            self.key_for("worker", info.name),
            info.model_dump_json(),
            px=max(1, int(ttl_seconds * 1000)),
        )

    def unregister_worker(self, name: str) -> None:
        self.redis.delete(self.key_for("worker", name))

    def is_worker_alive(self, name: str) -> bool:
        return bool(name) and bool(self.redis.exists(self.key_for("worker", name)))

    def live_workers(self) -> list[WorkerInfo]:
        keys = sorted(self.redis.scan_iter(match=self.key_for("worker", "*"), count=1000))
        if not keys:
            return []
        workers = []
        for key, raw in zip(keys, self.redis.mget(keys), strict=True):
            if not raw:  # expired between SCAN and MGET
                continue
            try:
                workers.append(WorkerInfo.model_validate_json(raw))
            except ValidationError as exc:
                # A worker of another latsep version (another registration schema) is not
                # ours to route to; it must not take /methods and /separate down with it.
                log.warning("ignoring worker registration %s: %s", key, exc.errors()[:1])
        return workers

    # --- metrics written by workers ----------------------------------------------------------
    def record_job_outcome(self, method: str, status: str, seconds: float | None) -> None:
        """Count a finished/failed/canceled job and add its run time to the histogram."""
        with self.redis.pipeline() as pipe:
            pipe.hincrby(self.key_for("metrics", "jobs_total"), f"{method}|{status}", 1)
            if seconds is not None:
                hist = self.key_for("metrics", "duration", method)
                for bound in DURATION_BUCKETS:
                    if seconds <= bound:
                        pipe.hincrby(hist, f"le={bound}", 1)
                pipe.hincrby(hist, "count", 1)
                pipe.hincrbyfloat(hist, "sum", seconds)
            pipe.execute()

    def job_outcomes(self) -> dict[tuple[str, str], int]:
        raw = self.redis.hgetall(self.key_for("metrics", "jobs_total"))
        out = {}
        for field, value in raw.items():
            method, _, status = _text(field).partition("|")
            out[(method, status)] = int(value)
        return out

    def duration_histograms(self) -> dict[str, dict[str, float]]:
        """method -> {"le=<bound>": cumulative count, "count": n, "sum": seconds}."""
        prefix = self.key_for("metrics", "duration", "")
        out = {}
        for key in self.redis.scan_iter(match=prefix + "*", count=1000):
            method = _text(key)[len(prefix) :]
            out[method] = {_text(k): float(v) for k, v in self.redis.hgetall(key).items()}
        return out

    def _get_bytes(self, key: str) -> bytes | None:
        value = self.redis.get(key)
        if value is None:
            return None
        return value if isinstance(value, bytes) else str(value).encode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def connect(url: str, *, socket_timeout: float = 5.0, connect_timeout: float = 5.0) -> Redis:
    """A Redis client returning bytes (audio is stored raw), with explicit socket timeouts.

    Without a socket timeout a hung Redis (paused, swapping) hangs every API request with
    it; with one, a request fails after `socket_timeout` s and the client gets a 503. One
    retry after a short pause rides over a pooled connection that a Redis restart closed.
    rq's worker opens its own connection with a timeout longer than its blocking dequeue.
    """
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.1), 1),
    )
