"""Gains by band on the masks' power (`band_gains`), fitted on one set of dumped chunks and
scored on another — the same candidates with and without them, paired.

`latsep bundle fit-mask-gains` separates its chunks itself; this study reuses the candidates
`bench/mask_study.py dump` keeps, so one dump serves every variant of the fit (fit on train,
score on valid; or cross-validate valid, fitting on half its chunks and scoring the rest):

    # 1. candidates of 64 train and 32 valid chunks (CPU, 1 thread; the bundle's defaults)
    .venv/bin/python bench/mask_study.py dump --bundle artifacts/default/plain \\
        --method mlass-bp --sources 3 --corpus data/corpus --split train --chunks 64 \\
        --candidates 8 --out /tmp/study/bp-3-train
    .venv/bin/python bench/mask_study.py dump ... --split valid --chunks 32 --out /tmp/study/bp-3
    # 2. fit on train, score on valid (margin over mixture/N, paired with no gains)
    .venv/bin/python bench/gains_study.py fit /tmp/study/bp-3-train --out /tmp/study/bp3.json
    .venv/bin/python bench/gains_study.py score /tmp/study/bp-3 /tmp/study/bp3.json

The dumps' sources are bass, drums[, other] (`evaluation.config.SOURCE_SETS`); the service's
time averages and masks' prior apply (`masks.smoothing_for`, `hpss.MaskPrior`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from latsep.audio import SAMPLE_RATE
from latsep.evaluation.config import SOURCE_SETS
from latsep.evaluation.mask_gains import gain_sample
from latsep.models.metrics import bss_sdr
from latsep.models.separation import wiener_stems
from latsep.models.separation.band_gains import BandGains, band_edges, fit_band_gains
from latsep.models.separation.hpss import PERCUSSIVE_SOURCES
from latsep.models.separation.masks import smoothing_for
from studies import print_paired

RATE = SAMPLE_RATE


def _dumps(folder: str) -> list[Path]:
    files = sorted(Path(folder).glob("*.npz"))
    if not files:
        sys.exit(f"no dumped chunks in {folder}")
    return files


def _sources(n: int) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    sources = SOURCE_SETS[n]
    return sources, tuple(s in PERCUSSIVE_SOURCES for s in sources)


def fit(args: argparse.Namespace) -> None:
    samples, grid = [], None
    for path in _dumps(args.dir):
        data = np.load(path)
        sources, percussive = _sources(data["references"].shape[0])
        sample, grid = gain_sample(
            data["candidates"], data["references"], smoothing_for(percussive), percussive
        )
        samples.append(sample)
    assert grid is not None
    edges = band_edges(RATE / 2, args.lowest, args.per_octave)
    gains = fit_band_gains(samples, grid, edges, steps=args.steps)
    entry = gains.to_manifest(sources, chunks=len(samples), dumps=args.dir)
    Path(args.out).write_text(json.dumps(entry, indent=1) + "\n")
    for source, row in entry["gains_db"].items():
        print(f"{source:6s}", " ".join(f"{g:+.1f}" for g in row))


def score(args: argparse.Namespace) -> None:
    rows: dict[str, list[np.ndarray]] = {}
    for path in _dumps(args.dir):
        data = np.load(path)
        candidates, references = data["candidates"], data["references"]
        n = references.shape[0]
        sources, percussive = _sources(n)
        mixture = references.sum(0)
        baseline = bss_sdr(references, np.repeat(mixture[None] / n, n, 0), RATE)
        settings = {"percussive": percussive, "smoothing": smoothing_for(percussive)}
        variants: dict[str, BandGains | None] = {"service (no gains)": None}
        for name in args.gains:
            variants[name] = BandGains.from_manifest(json.loads(Path(name).read_text()), sources)
        for name, gains in variants.items():
            stems = wiener_stems(mixture, candidates, mask_gains=gains, **settings)
            rows.setdefault(name, []).append(bss_sdr(references, stems, RATE) - baseline)
    print_paired(rows, "service (no gains)", f"{args.dir}: SDR margin over mixture/N per source")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(required=True)
    f = actions.add_parser("fit", help="fit gains on dumped chunks")
    f.add_argument("dir")
    f.add_argument("--out", required=True)
    f.add_argument("--steps", type=int, default=200)
    f.add_argument("--lowest", type=float, default=100.0, help="the first band edge, Hz")
    f.add_argument("--per-octave", type=int, default=3, help="bands per octave (3)")
    f.set_defaults(handler=fit)
    s = actions.add_parser("score", help="score gains files on other dumped chunks, paired")
    s.add_argument("dir")
    s.add_argument("gains", nargs="*")
    s.set_defaults(handler=score)
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()
