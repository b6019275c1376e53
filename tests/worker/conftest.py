"""Worker fixtures: the toy engine and a Redis database (14, ours alone) flushed per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from worker_support import toy_engine

from latsep.jobs import JobStore
from latsep.settings import Settings
from latsep.worker import runtime
from latsep.worker.routing import Engine

TEST_DBS = (14, 10, 9)  # worker tests; the service tests use 13, 12, 11


@pytest.fixture
def engine() -> Engine:
    return toy_engine()


@pytest.fixture(scope="session")
def redis_test_dbs() -> tuple[int, ...]:
    return TEST_DBS


@pytest.fixture(autouse=True)
def _clear_runtime() -> Iterator[None]:
    """The worker keeps its current job in module state; no test may leak it to the next."""
    yield
    runtime.clear()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path,
        worker_heartbeat_seconds=0.2,
        worker_ttl_seconds=1.0,
        progress_interval_seconds=0.0,
    )


@pytest.fixture
def store(redis: Redis, settings: Settings) -> JobStore:
    return JobStore(redis, settings.namespace)
