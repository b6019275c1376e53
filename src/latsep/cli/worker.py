"""`latsep worker`: load bundles once and run separation jobs from Redis, without forking."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run a separation worker (loads bundles once; no fork per job)",
        description="Take separation jobs from LATSEP_REDIS_URL's queues for every method the "
        "loaded bundles serve. SIGTERM finishes the running job, then exits.",
    )
    parser.add_argument(
        "--bundle",
        action="append",
        type=Path,
        default=None,
        help="bundle directory (repeatable; default: LATSEP_BUNDLES or every bundle under "
        "LATSEP_ARTIFACTS_DIR)",
    )
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    parser.add_argument("--name", default=None, help="worker name (default: host.pid.random)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from latsep.jobs import connect
    from latsep.settings import get_settings
    from latsep.worker.runner import run_worker

    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    from latsep.bundle import BundleError

    redis = connect(settings.effective_redis_url, **settings.redis_timeouts())
    try:
        run_worker(
            settings, redis=redis, bundle_paths=args.bundle, burst=args.burst, name=args.name
        )
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
