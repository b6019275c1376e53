"""The heartbeat never re-registers a worker after stop() returns, even with a beat in flight."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from latsep.settings import Settings
from latsep.worker import runner


class SlowStore:
    """register_worker takes a while (a loaded machine); records when each one finished."""

    redis = None

    def __init__(self) -> None:
        self.in_flight = threading.Event()
        self.finished: list[float] = []

    def register_worker(self, info, ttl) -> None:
        self.in_flight.set()
        time.sleep(5.5)  # longer than stop()'s join timeout
        self.finished.append(time.monotonic())


def test_stop_waits_for_a_beat_in_flight_and_no_beat_follows(monkeypatch) -> None:
    monkeypatch.setattr(runner, "reap_abandoned", lambda *args: None)
    store = SlowStore()
    settings = Settings(worker_heartbeat_seconds=0.01)
    heartbeat = runner.Heartbeat(store, info=SimpleNamespace(queues=[]), settings=settings)
    heartbeat.start()
    assert store.in_flight.wait(5)
    heartbeat.stop()
    stopped_at = time.monotonic()
    time.sleep(0.2)  # a stray beat would land here, after the worker unregistered
    assert store.finished and all(t <= stopped_at for t in store.finished)
