"""Seconds per chunk of the whole `separate_waveform` call with a bundle's defaults, no scoring.

`latsep bench` times the same call but also scores four picks per chunk; this is the quick
check for an idle machine. The settings are the bench's (`method_settings`: the bundle's
defaults, the candidate count if given); runs the chunks once to warm up, then times them.

    .venv/bin/python bench/speed.py lass 2 artifacts/default/plain 8
    .venv/bin/python bench/speed.py mlass-bp 3 artifacts/default/plain 16
    .venv/bin/python bench/speed.py mlass-pe 3 artifacts/default/plain --search smc
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from latsep.bundle import load_bundle
from latsep.corpus import evaluation_chunks
from latsep.evaluation.config import SOURCE_SETS, Overrides, method_settings
from latsep.methods import SEARCHES
from latsep.models.separation import Separator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method")
    parser.add_argument("sources", type=int)
    parser.add_argument("bundle")
    parser.add_argument("candidates", type=int, nargs="?", help="default: the bundle's")
    parser.add_argument("--corpus", default="data/corpus")
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--search", choices=SEARCHES, default=None, help="default: the bundle's")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle, torch.device("cpu"))
    sources = SOURCE_SETS[args.sources]
    chunks = evaluation_chunks(args.corpus, sources, split="test", count=args.chunks, seed=0)
    separator = Separator(bundle, args.method, sources)
    settings = method_settings(
        args.method,
        args.sources,
        Overrides(num_candidates=args.candidates, search=args.search),
        bundle.separation_defaults(args.method, args.sources),
    )

    def run() -> None:
        for chunk in chunks:
            separator.separate(np.asarray(chunk.stems, np.float64).sum(0), settings, seed=0)

    run()  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{args.method} N={args.sources} C={settings.num_candidates} {settings.search}: "
        f"{wall / len(chunks):.2f} s per chunk (wall), {cpu / len(chunks):.2f} s (CPU)"
    )


if __name__ == "__main__":
    main()
