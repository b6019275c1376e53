"""Fault injection against redis-servers of our own (never the shared one): an AOF-backed
server per test, the app on it, real `latsep worker` processes.

Each test starts its own redis-server on a free port in a temporary directory, so it may
SIGKILL, restart or SIGSTOP it; tests skip (saying why) without a redis-server binary.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from service_support import WorkerProcess, make_bundles

from latsep.jobs import JobStore, connect
from latsep.settings import Settings


@pytest.fixture(scope="session")
def fault_bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_bundles(tmp_path_factory.mktemp("fault-bundles"))


@pytest.fixture
def aof_server(redis_server):
    """A redis-server that logs every write to its AOF before answering (fsync always), as a
    deployment that must lose nothing would run it."""
    return redis_server("--appendonly", "yes", "--appendfsync", "always")


@pytest.fixture
def fault_settings(aof_server, tmp_path: Path, fault_bundles: list[Path]) -> Settings:
    return Settings(
        redis_url=aof_server.url,
        data_dir=tmp_path,
        bundles=",".join(str(b) for b in fault_bundles),
        max_upload_bytes=2_000_000,
        max_duration_seconds=5.0,
        default_num_candidates=2,
        worker_heartbeat_seconds=0.5,
        # Generous: a live worker whose heartbeat thread is starved on 2 busy cores must not
        # look dead (its job would be requeued); a killed one is still found in seconds.
        worker_ttl_seconds=8.0,
        reaper_interval_seconds=0.5,
        sse_poll_seconds=0.1,
        progress_interval_seconds=0.0,
        torch_threads=1,
        redis_socket_timeout_seconds=1.0,
        redis_connect_timeout_seconds=1.0,
    )


@pytest.fixture
def fault_redis(fault_settings: Settings) -> Iterator[Redis]:
    client = connect(fault_settings.effective_redis_url, **fault_settings.redis_timeouts())
    yield client
    client.close()


@pytest.fixture
def fault_store(fault_redis: Redis, fault_settings: Settings) -> JobStore:
    return JobStore(fault_redis, fault_settings.namespace)


@pytest.fixture
def workers(fault_settings: Settings, fault_store: JobStore) -> Iterator:
    started: list[WorkerProcess] = []

    def start(name: str) -> WorkerProcess:
        worker = WorkerProcess(fault_settings, fault_store, name)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
