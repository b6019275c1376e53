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

from paired import print_paired

SOURCES = ("bass", "drums", "other")


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
    from latsep.bundle import load_bundle
    from latsep.training.counts import EDGE_TOKENS, SparseCounter
    from latsep.training.data import StemStore

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle, torch.device("cpu"))
    codec, k = bundle.codec, bundle.num_tokens
    store = StemStore(args.corpus, "train", SOURCES)
    hop = codec.hop_length
    length = round(2.0 * codec.sample_rate / hop) * hop
    rng = np.random.default_rng(args.seed)
    counter = SparseCounter((3, k, k))
    start = time.perf_counter()
    with torch.inference_mode():
        for done in range(0, args.crops, 16):
            crops = store.crops(rng, min(16, args.crops - done), length, (-6, 6))
            crops = torch.from_numpy(tilted(crops, rng, args.tilt, codec.sample_rate))
            b = crops.shape[0]
            signals = torch.cat([crops.transpose(0, 1).reshape(3 * b, -1), crops.mean(1)])
            tokens = codec.encode(signals)[:, EDGE_TOKENS:-EDGE_TOKENS].numpy()
            sources, mixture = tokens[: 3 * b].reshape(3, b, -1), tokens[3 * b :]
            which = np.broadcast_to(np.arange(3)[:, None, None], sources.shape)
            counter.add(which, sources, np.broadcast_to(mixture[None], sources.shape))
            print(f"{done + b}/{args.crops} crops", flush=True)
    indices, counts = counter.coo()
    np.savez(args.out, indices=indices, counts=counts)
    print(f"{args.out}: {counter.total} triples, {time.perf_counter() - start:.0f} s")


def run(args: argparse.Namespace) -> None:
    from latsep.bundle import load_bundle
    from latsep.corpus import evaluation_chunks
    from latsep.evaluation.config import Overrides, method_settings
    from latsep.evaluation.runner import chunk_seed
    from latsep.models.likelihood import MarginalLikelihood
    from latsep.models.metrics import bss_sdr
    from latsep.models.separation import Separator

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle, torch.device("cpu"))
    settings = method_settings(
        "mlass-pe", 3, Overrides(), bundle.separation_defaults("mlass-pe", 3)
    )
    separator = Separator(bundle, "mlass-pe", SOURCES)
    shipped = separator.likelihood
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
    variants = {"shipped": shipped, "with tilted counts": augmented}
    chunks = evaluation_chunks(
        args.corpus, SOURCES, split=args.split, seconds=3.0, count=args.chunks, seed=0
    )
    rows: dict[str, list[np.ndarray]] = {}
    for n, chunk in enumerate(chunks):
        stems = np.asarray(chunk.stems, np.float64) * 10.0 ** (args.level_db / 20.0)
        mixture = stems.sum(0)
        baseline = bss_sdr(stems, np.repeat(mixture[None] / 3, 3, 0), bundle.sample_rate)
        line = []
        for name, likelihood in variants.items():
            separator.likelihood = likelihood
            result = separator.separate(mixture, settings, seed=chunk_seed(0, chunk))
            margin = bss_sdr(stems, result.stems, bundle.sample_rate) - baseline
            rows.setdefault(name, []).append(margin)
            line.append(" ".join(f"{m:+.2f}" for m in margin))
        print(f"{n + 1}/{len(chunks)} " + " | ".join(line), flush=True)
    print_paired(rows, "shipped", "margin over mixture/3 (bass drums other)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("count", help="count the marginal table over tilted train crops")
    c.add_argument("--bundle", required=True)
    c.add_argument("--corpus", required=True)
    c.add_argument("--crops", type=int, default=1200)
    c.add_argument("--tilt", type=float, default=3.0, help="dB per octave, at most")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--out", required=True)
    r = commands.add_parser("run", help="separate chunks with the shipped and augmented table")
    r.add_argument("--bundle", required=True)
    r.add_argument("--corpus", required=True)
    r.add_argument("--counts", required=True)
    r.add_argument("--split", default="valid", choices=["valid", "test"])
    r.add_argument("--chunks", type=int, default=32)
    r.add_argument("--level-db", type=float, default=0.0)
    r.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    count(args) if args.command == "count" else run(args)


if __name__ == "__main__":
    main()
