"""`latsep methods`: what the local bundles serve — methods, source sets, the defaults a
request leaving them out gets (method, sources, sampler options)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "methods",
        help="list the methods, sources and defaults the bundles serve",
        description=__doc__,
    )
    parser.add_argument(
        "--bundle", action="append", type=Path, default=None, help="bundle dir (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from latsep.bundle import BundleError
    from latsep.methods import DEFAULT_METHOD
    from latsep.settings import expand_bundle_paths, get_settings
    from latsep.worker.routing import Engine

    settings = get_settings()
    paths = expand_bundle_paths(args.bundle) if args.bundle else settings.bundle_paths()
    if not paths:
        print("no bundle: pass --bundle or set LATSEP_BUNDLES", file=sys.stderr)
        return 2
    try:
        engine = Engine.load(paths, device="cpu")
    except (BundleError, OSError) as exc:
        print(f"error: cannot load bundles: {exc}", file=sys.stderr)
        return 2
    rows = []
    for bundle in engine.bundles:
        info = bundle.info()
        for method in info.methods:
            rows.append(
                {
                    "method": method,
                    "bundle": info.name,
                    "default": method == DEFAULT_METHOD,
                    "source_sets": [",".join(s) for s in info.source_sets.get(method, [])],
                    "default_sources": info.default_sources(method),
                    "defaults": info.separation_defaults.get(method, {}),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'method':10} {'bundle':8} {'default sources':22} source sets")
    for row in rows:
        name = row["method"] + (" *" if row["default"] else "")
        default = ",".join(row["default_sources"] or ["(choose)"])
        print(f"{name:10} {row['bundle']:8} {default:22} {'; '.join(row['source_sets'])}")
    print("* the default method; sampler defaults per method: --json", file=sys.stderr)
    return 0
