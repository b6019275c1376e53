"""`latsep worker`: load bundles once, register what we serve, run jobs in this process.

The worker is rq's SimpleWorker (no fork per job: CUDA does not survive fork). A heartbeat
thread refreshes the worker's registration (methods, sources, sample rate, bundles) under a
short TTL, so the API knows what is served and can tell a dead worker from a busy one; each
beat also runs the reaper that requeues or fails the jobs of dead workers. SIGTERM asks rq for
a warm shutdown: the running job finishes first.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis import Redis
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import CanceledJobRegistry, FailedJobRegistry

from latsep.jobs import (
    SERIALIZER,
    JobStore,
    WorkerInfo,
    make_queue,
    queue_name,
    reap_abandoned,
)
from latsep.settings import Settings, expand_bundle_paths
from latsep.worker import runtime
from latsep.worker.jobs import CANCELED_STAGE, JobCanceled
from latsep.worker.routing import Engine

log = logging.getLogger(__name__)


class LatsepWorker(SimpleWorker):
    """SimpleWorker whose jobs are retried only by the reaper (after a crash), never on error.

    A deterministic failure (undecodable audio, an unservable request) would fail again.
    A job stopped because its client canceled it raises JobCanceled, the only way out of a
    running job; rq would record it as failed and log it as an error with a traceback. It is
    an expected end: logged at INFO and filed as canceled (status and registry), so the
    metrics count it as such.
    """

    def execute_job(self, job: Job, queue: Queue) -> None:
        job.retries_left = None
        super().execute_job(job, queue)

    def unsubscribe(self) -> None:
        """rq 3.0 sends UNSUBSCRIBE first and stops its pubsub thread after, and redis-py 8's
        stop() waits for the thread. When the thread reads the UNSUBSCRIBE reply before the
        stop flag is cleared, it loops back and waits up to its sleep_time (60 s) for a
        subscription, and a warm shutdown hangs that long (seen about 1 run in 6 of
        test_serve_runs_everything_and_persists_jobs). Clearing the flag first (stop without
        waiting) makes the reply wake a thread that exits."""
        if self.pubsub_thread is not None:
            self.pubsub_thread.stop(timeout=0)
        super().unsubscribe()

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        if len(exc_info) > 1 and isinstance(exc_info[1], JobCanceled):
            self.log.info("Worker %s: job %s canceled by its client", self.name, job.id)
            return
        super().handle_exception(job, *exc_info)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Any = None,
    ) -> None:
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        if (job.meta or {}).get("stage") != CANCELED_STAGE:
            return
        failed = FailedJobRegistry(job.origin, self.connection, serializer=self.serializer)
        canceled = CanceledJobRegistry(job.origin, self.connection, serializer=self.serializer)
        with self.connection.pipeline() as pipe:
            failed.remove(job, pipeline=pipe)
            canceled.add(job, ttl=job.failure_ttl or 0, pipeline=pipe)
            job.set_status(JobStatus.CANCELED, pipeline=pipe)
            pipe.execute()


class Heartbeat(threading.Thread):
    """Refreshes the registration every `interval` s and reaps dead workers' jobs."""

    def __init__(self, store: JobStore, info: WorkerInfo, settings: Settings) -> None:
        super().__init__(name="latsep-heartbeat", daemon=True)
        self.store, self.info, self.settings = store, info, settings
        self.stopped = threading.Event()
        self._beating = threading.Lock()  # held for a whole beat

    def beat(self) -> None:
        self.store.register_worker(self.info, self.settings.worker_ttl_seconds)
        reap_abandoned(self.store.redis, self.store, self.info.queues)

    def run(self) -> None:
        while not self.stopped.wait(self.settings.worker_heartbeat_seconds):
            with self._beating:
                if self.stopped.is_set():
                    break
                try:
                    self.beat()
                except Exception:  # Redis hiccup: try again on the next beat
                    log.exception("heartbeat failed")

    def stop(self) -> None:
        """Stop beating. Once this returns no beat can register the worker again, even one
        that was in flight (a slow beat on a loaded machine outlived join's timeout and
        re-registered a worker that had just unregistered)."""
        self.stopped.set()
        with self._beating:
            pass
        self.join(timeout=5)


def worker_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def run_worker(
    settings: Settings,
    *,
    redis: Redis,
    bundle_paths: Sequence[Path] | None = None,
    burst: bool = False,
    name: str | None = None,
    engine: Engine | None = None,
) -> bool:
    """Load bundles, register, and work until stopped (or, with `burst`, until idle)."""
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    if engine is None:
        paths = expand_bundle_paths(bundle_paths) if bundle_paths else settings.bundle_paths()
        if not paths:
            raise SystemExit(
                f"no bundle to load: set LATSEP_BUNDLES or put bundles in {settings.artifacts_dir}"
            )
        log.info("loading bundles %s", ", ".join(str(p) for p in paths))
        engine = Engine.load(paths, device=settings.device)
    store = JobStore(redis, settings.namespace)
    runtime.install(runtime.WorkerContext(settings, store, engine))
    queues = [queue_name(settings.queue_name, m) for m in engine.methods()]
    name = name or worker_name()
    info = WorkerInfo(
        name=name,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        device=engine.device,
        queues=queues,
        bundles=engine.capabilities(),
        started_at=time.time(),
    )
    heartbeat = Heartbeat(store, info, settings)
    heartbeat.beat()  # registered (and old crashes reaped) before the first job
    heartbeat.start()
    worker = LatsepWorker(
        [make_queue(redis, q) for q in queues],
        name=name,
        connection=redis,
        serializer=SERIALIZER,
    )
    log.info("worker %s serves %s on %s", name, ", ".join(engine.methods()), engine.device)
    try:
        return bool(worker.work(burst=burst, logging_level=settings.log_level.upper()))
    finally:
        heartbeat.stop()
        store.unregister_worker(name)
