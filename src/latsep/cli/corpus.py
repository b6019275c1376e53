"""`latsep corpus build|stats`: render the Slakh-style training corpus and summarise one."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("corpus", help="build or inspect the offline training corpus")
    commands = parser.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")

    build = commands.add_parser(
        "build",
        help="render chorales and MMA grooves into aligned bass/drums/other FLAC stems",
        description="Render a Slakh-style corpus (22,050 Hz mono FLAC stems bass/drums/other, "
        "index.json) with FluidSynth. Needs the Debian packages fluidsynth, mma, "
        "fluid-soundfont-gm, timgm6mb-soundfont and musescore-general-soundfont-small.",
    )
    build.add_argument("--out", type=Path, required=True, help="corpus directory")
    build.add_argument(
        "--minutes", type=float, default=200.0,
        help="minutes of audio per stem in train; valid and test get 10%% each (default 200)",
    )  # fmt: skip
    build.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    build.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel songs (default: all cores)",
    )
    build.add_argument("--overwrite", action="store_true", help="replace a corpus already in --out")
    build.add_argument(
        "--heldout-soundfont",
        default=None,
        metavar="NAME",
        help="build only the test split, rendered with this soundfont (e.g. GMbank, which no "
        "split of the corpus uses): the same pieces in a timbre the models never heard",
    )
    build.set_defaults(handler=_build)

    stats = commands.add_parser("stats", help="hours and stem levels per split, as JSON")
    stats.add_argument("root", type=Path, help="corpus directory")
    stats.add_argument(
        "--audio",
        action="store_true",
        help="also decode the stems: alignment, active share, spectral centroid and bands",
    )
    stats.set_defaults(handler=_stats)


def _build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from latsep.corpus import BuildConfig, build_corpus

    if args.minutes <= 0 or args.workers < 1:
        print("--minutes must be positive and --workers at least 1", file=sys.stderr)
        return 2
    config = BuildConfig.from_minutes(args.minutes, seed=args.seed)
    if args.heldout_soundfont:
        config = dataclasses.replace(
            config,
            target_seconds={"test": config.target_seconds["test"]},
            soundfonts={**config.soundfonts, "test": (args.heldout_soundfont,)},
        )
    total = sum(config.target_seconds.values()) / 60.0
    began = time.monotonic()
    bar_format = (
        "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} min [{elapsed}<{remaining}{postfix}]"
    )
    with tqdm(total=total, desc="corpus", file=sys.stderr, bar_format=bar_format) as bar:

        def progress(split: str, seconds: float) -> None:
            bar.set_postfix_str(split, refresh=False)
            bar.update(min(seconds / 60.0, bar.total - bar.n))  # the last song may overshoot

        try:
            index = build_corpus(
                config, args.out, workers=args.workers, overwrite=args.overwrite, progress=progress
            )
        except (FileExistsError, FileNotFoundError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    summary = index["splits"]
    print(
        json.dumps(
            {
                "out": str(args.out),
                "wall_seconds": round(time.monotonic() - began, 1),
                "splits": summary,
            }
        )
    )
    return 0


def _stats(args: argparse.Namespace) -> int:
    from latsep.corpus.stats import corpus_stats

    try:
        print(json.dumps(corpus_stats(args.root, audio=args.audio), indent=1))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
