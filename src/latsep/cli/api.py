"""`latsep api`: the HTTP API alone (no torch), pointed at `LATSEP_REDIS_URL`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "api",
        help="run the HTTP API (workers run elsewhere, sharing LATSEP_REDIS_URL)",
        description="Run the FastAPI app with uvicorn. Settings come from LATSEP_* variables.",
    )
    parser.add_argument("--host", default=None, help="bind address (default: LATSEP_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default: LATSEP_PORT)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from latsep.service.security import check_exposure
    from latsep.settings import get_settings

    settings = get_settings()
    host = args.host or settings.host
    check_exposure(settings, host)  # SystemExit, said in the log: beyond loopback, no keys
    uvicorn.run(
        "latsep.service.app:create_app",
        factory=True,
        host=host,
        port=args.port if args.port is not None else settings.port,
        log_level=settings.log_level,
    )
    return 0
