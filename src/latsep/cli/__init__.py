"""The `latsep` console command.

Every module in this package that defines `register(subparsers)` adds one subcommand
(`corpus`, `train`, `serve`, ...). Modules import their heavy dependencies inside the
handler, so `latsep --help` stays fast and the API process never pulls in torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

# OpenMP threads spin while waiting for each other by default; on a busy machine a spinning
# thread steals the core its partner needs, and 2 torch threads ran 10× slower than 1
# (measured on the 2-core dev box while training ran). Passive waits cost ~nothing when
# idle. Must be set before torch loads OpenMP, hence here; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latsep",
        description="Music source separation with latent generative methods.",
    )
    from latsep import __version__

    parser.add_argument("--version", action="version", version=f"latsep {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
