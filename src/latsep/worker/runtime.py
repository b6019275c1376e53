"""What a worker process holds for its whole life: settings, the job store, loaded bundles.

`latsep worker` installs a context before it starts taking jobs, so bundles load once per
process. A job run without one (rq burst mode in a test, `rq worker` by hand) builds it on
first use from the settings and the job's own Redis connection.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from redis import Redis

from latsep.jobs import JobStore
from latsep.settings import Settings, get_settings
from latsep.worker.routing import Engine


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    store: JobStore
    engine: Engine


_context: WorkerContext | None = None
_lock = threading.Lock()


def install(context: WorkerContext) -> None:
    global _context
    with _lock:
        _context = context


def clear() -> None:
    global _context
    with _lock:
        _context = None


def current(redis: Redis) -> WorkerContext:
    """The installed context, or a new one loaded from the settings (once)."""
    global _context
    with _lock:
        if _context is None:
            settings = get_settings()
            engine = Engine.load(settings.bundle_paths(), device=settings.device)
            _context = WorkerContext(settings, JobStore(redis, settings.namespace), engine)
        return _context
