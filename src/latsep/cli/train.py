"""`latsep train codec | prior | counts | bundle --config FILE.toml`: offline training.

Every stage is resumable (re-run the same command) and writes into --run-dir; `bundle`
runs every stage a bundle needs and writes the bundles into --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

STAGES = ("codec", "prior", "counts", "bundle")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train codecs, priors, count tables and bundles from a built corpus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument(
        "--config", required=True, help="a TOML file, or a shipped preset: tiny, default"
    )
    parser.add_argument("--corpus", required=True, type=Path, help="built corpus (index.json)")
    parser.add_argument(
        "--run-dir", type=Path, default=None, help="checkpoints (default runs/<config name>)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="bundle output dir (default artifacts/<name>)"
    )
    parser.add_argument("--kind", choices=("plain", "lq"), default=None, help="codec kind")
    parser.add_argument("--source", default=None, help="prior: only this source")
    parser.add_argument("--bundle", default=None, help="counts/bundle: only this bundle name")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="wall-time budget for each codec and prior run (total over resumptions)",
    )
    parser.add_argument("--codec-minutes", type=float, default=None, help="codec budget only")
    parser.add_argument("--prior-minutes", type=float, default=None, help="prior budget only")
    parser.add_argument(
        "--count-crops",
        type=int,
        default=None,
        metavar="N",
        help="train crops to count (the config's otherwise); with --init-from, 0 keeps the "
        "bundle's counts as they are",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        action="append",
        default=[],
        metavar="BUNDLE",
        help="warm start from a shipped bundle (repeat for plain and lq): its codec as is, "
        "priors continued from its weights, new counts added to its tables",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from latsep.training import Pipeline, load_config, resolve_device

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config)
    codec_minutes = args.codec_minutes if args.codec_minutes is not None else args.max_minutes
    prior_minutes = args.prior_minutes if args.prior_minutes is not None else args.max_minutes
    if codec_minutes is not None:
        codec_training = dataclasses.replace(
            config.codec_training, max_minutes=codec_minutes, lq_max_minutes=None
        )
        config = dataclasses.replace(config, codec_training=codec_training)
    if prior_minutes is not None:
        prior_training = dataclasses.replace(config.prior_training, max_minutes=prior_minutes)
        config = dataclasses.replace(config, prior_training=prior_training)
    if args.count_crops is not None:
        if args.count_crops < 0 or (args.count_crops == 0 and not args.init_from):
            print("--count-crops must be >= 1 (0 only with --init-from)", file=sys.stderr)
            return 2
        config = dataclasses.replace(
            config, counts=dataclasses.replace(config.counts, crops=args.count_crops)
        )
    run_dir = args.run_dir or Path("runs") / config.name
    out = args.out or Path("artifacts") / config.name
    pipeline = Pipeline(
        config,
        args.corpus,
        run_dir,
        resolve_device(args.device),
        progress=not args.no_progress,
        init_from=tuple(args.init_from),
    )
    kinds = (args.kind,) if args.kind else config.codec_kinds()
    bundles = [b for b in config.bundles if args.bundle in (None, b.name)]
    if args.bundle and not bundles:
        print(f"no bundle named {args.bundle!r} in {args.config}", file=sys.stderr)
        return 2
    report: dict[str, object] = {}
    if args.stage == "codec":
        for kind in kinds:
            report[f"codec-{kind}"] = _codec_report(pipeline.codec(kind))
    elif args.stage == "prior":
        for kind in kinds:
            for source in config.sources_for(kind):
                if args.source in (None, source):
                    report[f"prior-{kind}-{source}"] = pipeline.prior(kind, source).quality
    elif args.stage == "counts":
        for spec in bundles:
            result = pipeline.counts(spec)
            report[f"counts-{spec.name}"] = {
                "tables": {n: [int(c.shape[0]) for _, c in t] for n, t in result.tables.items()},
                "triples": result.triples,
                "valid_coverage": result.coverage,
                "gaussian_sigma": result.gaussian_sigma,
                "linear_agreement": result.linear_agreement,
            }
    else:
        for spec in bundles:
            path = pipeline.bundle(spec, out)
            manifest = json.loads((path / "manifest.json").read_text())
            report[spec.name] = {"path": str(path), "methods": manifest["methods"],
                                 "quality": manifest["quality"]}  # fmt: skip
    print(json.dumps(report, indent=1))
    return 0


def _codec_report(codec_run) -> dict:
    return {
        "steps": codec_run.state.step,
        "finished": codec_run.state.finished,
        "minutes": round(codec_run.state.elapsed_seconds / 60, 2),
        "quality": codec_run.quality,
    }
