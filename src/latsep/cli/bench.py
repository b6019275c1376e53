"""`latsep bench`: the five methods on held-out corpus chunks; tables and plots in --out."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from latsep.methods import SEARCHES


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark the separation methods (SDR, SI-SDR, speed) on the corpus test split",
        description="Separate N-second chunks of the corpus test split (every source audible; "
        "mixture = plain sum) with each method and 2/3 sources, and write results.json, "
        "results.md, sdr.png and spectrogram.png to --out. Per-chunk results are cached in "
        "--out/chunks.jsonl: run the same command again to continue an interrupted run. "
        "Sampler settings left out use the per-method defaults (latsep.evaluation.config).",
    )
    parser.add_argument("--bundles", type=Path, required=True, help="a bundle or a dir of them")
    parser.add_argument("--corpus", type=Path, required=True, help="corpus root (index.json)")
    parser.add_argument("--out", type=Path, default=Path("docs/bench"), help="output directory")
    parser.add_argument("--chunks", type=int, default=50, help="chunks per source set (50)")
    parser.add_argument(
        "--split",
        choices=("test", "valid"),
        default="test",
        help="test (the benchmark); valid for tuning separation defaults without touching test",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="chunk length (3.0)")
    parser.add_argument("--methods", type=_names, default=None, help="comma-separated (all)")
    parser.add_argument("--sources", type=_ints, default=(2, 3), help="source counts (2,3)")
    parser.add_argument("--num-candidates", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--likelihood-weight", type=float, default=None)
    parser.add_argument("--search", choices=SEARCHES, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (cpu)")
    parser.add_argument(
        "--level-db",
        type=float,
        default=0.0,
        help="scale every chunk by this gain: a held-out level condition (0)",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=None,
        metavar="BETA",
        help="count-table backoff strength instead of the bundle's (0: off)",
    )
    parser.add_argument(
        "--latent-sigma",
        type=float,
        default=None,
        metavar="SIGMA",
        help="lqvae, hybrid: score the mixture's continuous latent with this σ too (0: its "
        "token only) instead of the bundle's choice",
    )
    parser.add_argument(
        "--no-level-norm",
        action="store_true",
        help="encode mixtures as they come (ablation of level normalisation)",
    )
    parser.add_argument(
        "--no-views",
        action="store_true",
        help="leave out the band views a bundle counted (their ablation)",
    )
    parser.add_argument(
        "--no-hpss-masks",
        action="store_true",
        help="masks without the prior that drums hold the mix's onsets (its ablation)",
    )
    parser.add_argument(
        "--no-source-smoothing",
        action="store_true",
        help="one 5-frame average of every source's power before the masks instead of 15 "
        "frames for steady sources and 3 for drums (its ablation)",
    )
    parser.add_argument(
        "--no-mask-gains",
        action="store_true",
        help="no gains by frequency band on each source's power before the masks (the "
        "bundle's, `latsep bundle fit-mask-gains`; their ablation)",
    )
    parser.add_argument("--quick", action="store_true", help="4 chunks: a smoke run")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from latsep.bundle import BundleError
    from latsep.evaluation import BenchConfig, Overrides, run_bench

    if args.chunks < 1 or args.threads < 1 or args.seconds <= 0:
        print("--chunks and --threads must be >= 1, --seconds > 0", file=sys.stderr)
        return 2
    config = BenchConfig(
        bundles=args.bundles,
        corpus=args.corpus,
        out=args.out,
        chunks=4 if args.quick else args.chunks,
        split=args.split,
        seconds=args.seconds,
        methods=args.methods,
        sources=args.sources,
        overrides=Overrides(
            num_candidates=args.num_candidates,
            temperature=args.temperature,
            top_k=args.top_k,
            likelihood_weight=args.likelihood_weight,
            search=args.search,
        ),
        threads=args.threads,
        seed=args.seed,
        device=args.device,
        level_db=args.level_db,
        backoff=args.backoff,
        level_norm=not args.no_level_norm,
        latent_sigma=args.latent_sigma,
        views=not args.no_views,
        hpss_masks=not args.no_hpss_masks,
        source_smoothing=not args.no_source_smoothing,
        mask_gains=not args.no_mask_gains,
    )
    began = time.perf_counter()
    try:
        run_bench(config, progress=lambda message: print(message, file=sys.stderr, flush=True))
    except (BundleError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"done in {time.perf_counter() - began:.1f} s; see {args.out}/results.md")
    return 0
