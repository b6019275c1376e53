"""The RQ job and the worker loop, in-process in burst mode against a real Redis database."""

from __future__ import annotations

import io
import logging

import numpy as np
import soundfile as sf
from redis import Redis
from rq.job import JobStatus
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from worker_support import mixture, toy_engine

from latsep.jobs import (
    JobRequest,
    JobState,
    JobStore,
    SeparationOptions,
    enqueue_separation,
    fetch_job,
    job_state,
    make_queue,
    queue_name,
    reap_abandoned,
)
from latsep.settings import Settings
from latsep.worker.routing import Engine
from latsep.worker.runner import LatsepWorker, run_worker

SHORT = 0.25


def wav(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, 22050, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def enqueue(
    store: JobStore, settings: Settings, data: bytes, job_id: str, method: str = "lass", **kw
) -> JobRequest:
    request = JobRequest(
        job_id=job_id,
        method=method,
        sources=["bass", "drums"],
        options=SeparationOptions(num_candidates=2, seed=1),
        queue=queue_name(settings.queue_name, method),
        duration_seconds=SHORT,
        **kw,
    )
    store.save_request(request, 3600)
    store.save_upload(job_id, data, {}, 3600)
    enqueue_separation(store.redis, request, timeout=60, result_ttl=600, queued_ttl=600)
    return request


def state(redis: Redis, store: JobStore, job_id: str) -> JobState:
    job = fetch_job(redis, job_id)
    assert job is not None
    return job_state(job, store.is_cancel_requested(job_id))


def test_a_job_runs_and_leaves_stems_in_redis(
    redis: Redis, store: JobStore, settings: Settings, engine: Engine
) -> None:
    bass, drums = mixture(SHORT)
    enqueue(store, settings, wav(bass + drums), "ok1")
    assert run_worker(settings, redis=redis, engine=engine, burst=True, name="burst-1")
    st = state(redis, store, "ok1")
    assert st.status == "finished" and st.progress == 1.0 and st.worker == "burst-1"
    result = store.fetch_result("ok1")
    assert result is not None and result.sources == ["bass", "drums"]
    assert {"decode_s", "separate_s", "encode_s", "total_s"} <= set(result.timings)
    stems = {s: sf.read(io.BytesIO(store.fetch_stem("ok1", s) or b""))[0] for s in result.sources}
    np.testing.assert_allclose(stems["bass"] + stems["drums"], bass + drums, atol=1e-5)
    assert store.fetch_mixture("ok1") is None  # the upload is dropped once used
    assert 0 < redis.ttl(store.key_for("stem", "ok1", "bass")) <= settings.result_ttl_seconds
    assert store.job_outcomes() == {("lass", "finished"): 1}
    assert store.duration_histograms()["lass"]["count"] == 1
    assert not store.is_worker_alive("burst-1")  # unregistered on exit


def test_bad_audio_fails_once_with_its_message(
    redis: Redis, store: JobStore, settings: Settings, engine: Engine
) -> None:
    enqueue(store, settings, b"definitely not audio" * 50, "bad1")
    run_worker(settings, redis=redis, engine=engine, burst=True)
    st = state(redis, store, "bad1")
    assert st.status == "failed"
    assert st.error is not None and "not a readable audio file" in st.error
    assert store.job_outcomes() == {("lass", "failed"): 1}
    job = fetch_job(redis, "bad1")
    assert job is not None and not job.retries_left  # an ordinary failure is not retried


def test_an_expired_upload_fails_clearly(
    redis: Redis, store: JobStore, settings: Settings, engine: Engine
) -> None:
    bass, drums = mixture(SHORT)
    enqueue(store, settings, wav(bass + drums), "gone1")
    store.delete_uploads("gone1", [])
    run_worker(settings, redis=redis, engine=engine, burst=True)
    st = state(redis, store, "gone1")
    assert st.status == "failed" and "expired" in (st.error or "")


def test_cancellation_stops_the_job(
    redis: Redis, store: JobStore, settings: Settings, engine: Engine, caplog
) -> None:
    bass, drums = mixture(SHORT)
    enqueue(store, settings, wav(bass + drums), "cx1")
    store.request_cancel("cx1", 600)  # as DELETE does while the job runs
    with caplog.at_level(logging.INFO):
        run_worker(settings, redis=redis, engine=engine, burst=True)
    st = state(redis, store, "cx1")
    assert st.status == "canceled"
    assert store.fetch_result("cx1") is None
    assert store.job_outcomes() == {("lass", "canceled"): 1}
    # Filed as canceled, not failed (the /metrics state gauge reads these registries), and
    # logged as the expected end it is: no ERROR, no traceback (#12.9).
    job = fetch_job(redis, "cx1")
    assert job is not None and job.get_status() == JobStatus.CANCELED
    name = queue_name(settings.queue_name, "lass")
    assert CanceledJobRegistry(name, connection=redis).count == 1
    assert FailedJobRegistry(name, connection=redis).count == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text
    assert "canceled by its client" in caplog.text


def _start_without_running(redis: Redis, settings: Settings, name: str) -> None:
    """Take the next job the way a worker does, then 'crash' (never run it)."""
    queue = make_queue(redis, queue_name(settings.queue_name, "lass"))
    ghost = LatsepWorker([queue], name=name, connection=redis, serializer=queue.serializer)
    dequeued = ghost.dequeue_job_and_maintain_ttl(timeout=1)
    assert dequeued is not None
    job, _ = dequeued
    ghost.prepare_execution(job)
    ghost.prepare_job_execution(job)
    assert job.get_status() == JobStatus.STARTED


def test_the_reaper_retries_once_then_fails(
    redis: Redis, store: JobStore, settings: Settings
) -> None:
    bass, drums = mixture(SHORT)
    enqueue(store, settings, wav(bass + drums), "crash1")
    queues = [queue_name(settings.queue_name, "lass")]

    _start_without_running(redis, settings, "ghost-1")
    assert state(redis, store, "crash1").status == "started"
    assert reap_abandoned(redis, store, queues) == ["crash1"]
    st = state(redis, store, "crash1")
    assert st.status == "queued" and "requeued" in st.stage

    _start_without_running(redis, settings, "ghost-2")
    assert reap_abandoned(redis, store, queues) == ["crash1"]
    st = state(redis, store, "crash1")
    assert st.status == "failed"
    assert st.error is not None and "stopped (crashed or was killed) 2 time(s)" in st.error
    assert reap_abandoned(redis, store, queues) == []


def test_the_reaper_spares_live_workers(
    redis: Redis, store: JobStore, settings: Settings, engine: Engine
) -> None:
    from latsep.jobs import WorkerInfo

    bass, drums = mixture(SHORT)
    enqueue(store, settings, wav(bass + drums), "alive1")
    info = WorkerInfo(
        name="busy-1", hostname="h", pid=1, device="cpu", queues=[], bundles=[], started_at=0.0
    )
    store.register_worker(info, 60)
    _start_without_running(redis, settings, "busy-1")
    queues = [queue_name(settings.queue_name, "lass")]
    assert reap_abandoned(redis, store, queues) == []
    assert state(redis, store, "alive1").status == "started"


def test_a_full_job_store_fails_the_job_in_words(
    redis: Redis, store: JobStore, settings: Settings, engine: Engine, monkeypatch
) -> None:
    """Redis at maxmemory (noeviction) refuses the stems: the job says so (#12.8)."""
    from redis.exceptions import OutOfMemoryError

    def full(self, *args, **kwargs):
        raise OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'.")

    monkeypatch.setattr(JobStore, "save_result", full)
    bass, drums = mixture(SHORT)
    enqueue(store, settings, wav(bass + drums), "oom1")
    run_worker(settings, redis=redis, engine=engine, burst=True)
    st = state(redis, store, "oom1")
    assert st.status == "failed"
    assert st.error is not None and st.error.startswith("the job store (Redis) is full")


def test_a_job_runs_with_the_options_the_api_resolved(
    redis: Redis, store: JobStore, settings: Settings
) -> None:
    """The API resolved the options against the bundle defaults it saw; the worker runs
    exactly those, even where its own bundle's defaults say otherwise (top_k null is "no
    top-k" there, not "left out"). A job without them (an older API) is resolved here."""
    from latsep.jobs import ResolvedOptions

    engine = toy_engine(defaults={"lass": {"num_candidates": 3, "top_k": 4}})
    resolved = ResolvedOptions(num_candidates=2, top_k=None, likelihood_weight=1.5, seed=7)
    bass, drums = mixture(SHORT)
    enqueue(store, settings, wav(bass + drums), "res1", resolved=resolved)
    enqueue(store, settings, wav(bass + drums), "res2")  # options only: resolved here
    run_worker(settings, redis=redis, engine=engine, burst=True)
    first, second = store.fetch_result("res1"), store.fetch_result("res2")
    assert first is not None and first.options == resolved
    assert len(first.candidate_consistency) == 2
    assert second is not None and second.options is not None
    assert (second.options.num_candidates, second.options.top_k) == (2, 4)  # asked 2; top_k 4
