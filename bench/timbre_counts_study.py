"""Three sources: do mlass-pe's tables generalise better when counted over re-coloured stems?

Timbre diversity (issue #11, lever 2) without retraining the codec or the priors: count
more (source, z_i, y) triples for mlass-pe's marginal table over train crops whose stems are
each given a random spectral tilt (±`--tilt` dB per octave around 500 Hz, level kept), add
them to the shipped bundle's counts, and separate with the shipped table and the augmented
one, paired on the same chunks and seeds.

    .venv/bin/python bench/timbre_counts_study.py count --bundle artifacts/default/plain \
        --corpus data/corpus --crops 1200 --out /tmp/study/tilted.npz
    .venv/bin/python bench/timbre_counts_study.py run --bundle artifacts/default/plain \
        --corpus data/heldout --split test --level-db -12 --counts /tmp/study/tilted.npz

An exploratory study, not part of the service (mlass-pe, 3 sources, the shipped defaults).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from studies import (
    SOURCES,
    compare,
    cpu_bundle,
    crop_arguments,
    encoded_train_crops,
    mlass_pe3,
    run_arguments,
    with_likelihood,
)


def tilted(crops: np.ndarray, rng: np.random.Generator, tilt_db: float, rate: int) -> np.ndarray:
    """Each stem of each crop (B, N, L) through a random tilt g(f) = t·log2(f / 500 Hz) dB,
    t ~ U(−tilt, tilt), clipped to ±12 dB, at the stem's own RMS."""
    spectrum = np.fft.rfft(crops, axis=-1)
    freqs = np.fft.rfftfreq(crops.shape[-1], 1.0 / rate)
    octaves = np.log2(np.maximum(freqs, 20.0) / 500.0)
    slopes = rng.uniform(-tilt_db, tilt_db, size=(*crops.shape[:2], 1))
    gain = 10.0 ** (np.clip(slopes * octaves, -12.0, 12.0) / 20.0)
    out = np.fft.irfft(spectrum * gain, n=crops.shape[-1], axis=-1)
    rms_in = np.sqrt((crops**2).mean(-1, keepdims=True))
    rms_out = np.sqrt((out**2).mean(-1, keepdims=True))
    return (out * rms_in / np.maximum(rms_out, 1e-12)).astype(np.float32)


def count(args: argparse.Namespace) -> None:
    from latsep.training.counts import SparseCounter

    bundle = cpu_bundle(args.bundle, args.threads)
    counter = SparseCounter((3, bundle.num_tokens, bundle.num_tokens))
    rate = bundle.codec.sample_rate
    recolour = lambda crops, rng: tilted(crops, rng, args.tilt, rate)  # noqa: E731
    start = time.perf_counter()
    for batch in encoded_train_crops(bundle.codec, args.corpus, args.crops, args.seed, recolour):
        sources, mixture = batch.sources.numpy(), batch.mixture.numpy()
        which = np.broadcast_to(np.arange(3)[:, None, None], sources.shape)
        counter.add(which, sources, np.broadcast_to(mixture[None], sources.shape))
    indices, counts = counter.coo()
    np.savez(args.out, indices=indices, counts=counts)
    print(f"{args.out}: {counter.total} triples, {time.perf_counter() - start:.0f} s")


def run(args: argparse.Namespace) -> None:
    from latsep.models.likelihood import MarginalLikelihood

    bundle, settings, separator = mlass_pe3(args.bundle, args.threads)
    # shipped counts (the bundle's order is SOURCES) plus the tilted crops' counts
    indices, counts = bundle.raw_tables["marginal:" + "+".join(SOURCES)][0]
    extra = np.load(args.counts)
    augmented = MarginalLikelihood.from_sparse(
        torch.cat([torch.as_tensor(indices), torch.from_numpy(extra["indices"])], 1),
        torch.cat([torch.as_tensor(counts), torch.from_numpy(extra["counts"])]),
        3,
        bundle.num_tokens,
        bundle.default_smoothing,
    )
    variants = {
        "shipped": with_likelihood(separator, settings, separator.likelihood),
        "with tilted counts": with_likelihood(separator, settings, augmented),
    }
    compare(variants, args, bundle.sample_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("count", help="count the marginal table over tilted train crops")
    crop_arguments(c, crops=1200)
    c.add_argument("--tilt", type=float, default=3.0, help="dB per octave, at most")
    r = commands.add_parser("run", help="separate chunks with the shipped and augmented table")
    run_arguments(r)
    r.add_argument("--counts", required=True)
    args = parser.parse_args()
    count(args) if args.command == "count" else run(args)


if __name__ == "__main__":
    main()
