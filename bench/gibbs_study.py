"""Do Gibbs sweeps (models/separation/refine.py) help? The same first pass, then 0..S sweeps.

For each chunk: the mixture's tokens, one first pass with the method's defaults (or
--candidates), then sweeps one at a time; after each, the candidates are decoded and the
service's ensemble masks (`wiener_stems`: consensus magnitude, smoothed) scored against the
references. Margins are over mixture/N; differences are paired with the first pass.

    .venv/bin/python bench/gibbs_study.py --bundle artifacts/default/plain --method mlass-bp \
        --sources 3 --corpus data/corpus --chunks 16 --sweeps 2
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch


def main() -> None:
    from latsep.bundle import load_bundle
    from latsep.corpus import evaluation_chunks
    from latsep.evaluation.config import SOURCE_SETS, Overrides, method_settings
    from latsep.evaluation.runner import chunk_seed
    from latsep.models.metrics import bss_sdr
    from latsep.models.separation import Separator
    from latsep.models.separation.chunks import decode_tokens
    from latsep.models.separation.consistency import wiener_stems
    from latsep.models.separation.engine import separate, step_sampler
    from latsep.models.separation.observation import (
        level_gain,
        models_input,
        observe_mixture,
    )
    from latsep.models.separation.refine import gibbs_sweeps

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--method", required=True, choices=("mlass-bp", "mlass-pe"))
    parser.add_argument("--sources", type=int, default=3)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--candidates", type=int, default=None)
    parser.add_argument("--sweeps", type=int, default=2)
    parser.add_argument("--level-db", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle, torch.device("cpu"))
    sources = SOURCE_SETS[args.sources]
    settings = method_settings(
        args.method,
        args.sources,
        Overrides(num_candidates=args.candidates),
        bundle.separation_defaults(args.method, args.sources),
    )
    separator = Separator(bundle, args.method, sources)
    priors, likelihood = separator.priors, separator.likelihood
    sampler = step_sampler(args.method, likelihood, settings.likelihood_weight)
    chunks = evaluation_chunks(
        args.corpus, sources, split=args.split, seconds=3.0, count=args.chunks, seed=0
    )
    n = args.sources
    margins: list[list[np.ndarray]] = []
    times = np.zeros(args.sweeps + 1)
    for index, chunk in enumerate(chunks):
        stems = np.asarray(chunk.stems, np.float64) * 10.0 ** (args.level_db / 20.0)
        mixture = stems.sum(0)
        gain = level_gain(mixture, n, bundle.stem_level_dbfs)
        padded = models_input(bundle.codec, mixture, gain, n)
        y, _ = observe_mixture(bundle.codec, likelihood, padded, False)  # tokens
        generator = torch.Generator().manual_seed(chunk_seed(0, chunk))
        baseline = bss_sdr(stems, np.repeat(mixture[None] / n, n, 0), 22050)
        start = time.perf_counter()
        tokens = separate(
            args.method,
            priors,
            likelihood,
            y,
            **settings.keywords(),
            generator=generator,
        ).tokens
        row, first = [], tokens
        for sweep in range(args.sweeps + 1):
            if sweep:
                start = time.perf_counter()
                with torch.inference_mode():
                    tokens = gibbs_sweeps(
                        sampler,
                        priors,
                        y,
                        tokens,
                        sweeps=1,
                        temperature=settings.temperature,
                        top_k=settings.top_k,
                        generator=generator,
                    )
            times[sweep] += time.perf_counter() - start
            candidates = decode_tokens(bundle.codec, tokens, mixture.size) / gain
            estimate = wiener_stems(mixture, candidates)
            row.append(bss_sdr(stems, estimate, 22050) - baseline)
        # the first pass's candidates and the last sweep's together (2C)
        both = decode_tokens(bundle.codec, torch.cat([first, tokens]), mixture.size) / gain
        row.append(bss_sdr(stems, wiener_stems(mixture, both), 22050) - baseline)
        margins.append(row)
        cells = "  ".join(" ".join(f"{v:+.1f}" for v in r) for r in row)
        print(f"{index + 1}/{len(chunks)} {cells}", flush=True)

    data = np.array(margins)  # (chunks, sweeps + 1, N)
    print(
        f"{args.method} {n} sources, {len(chunks)} {args.split} chunks, C = "
        f"{settings.num_candidates}; margin over mixture/N, mean; paired diff ± s.e."
    )
    for sweep in range(args.sweeps + 2):
        diff = data[:, sweep] - data[:, 0]
        se = np.nanstd(diff, 0, ddof=1) / math.sqrt(len(diff))
        cells = " ".join(f"{v:+.2f}" for v in np.nanmean(data[:, sweep], 0))
        diffs = " ".join(
            f"{d:+.2f} ± {s:.2f}" for d, s in zip(np.nanmean(diff, 0), se, strict=True)
        )
        name = f"sweeps {sweep}" if sweep <= args.sweeps else "first ∪ last"
        seconds = times[min(sweep, args.sweeps)] / len(chunks)
        print(f"{name:12s}: {cells}   | {diffs}   ({seconds:.1f} s/chunk)")


if __name__ == "__main__":
    main()
