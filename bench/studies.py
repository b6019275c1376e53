"""What the three-source study scripts share (grouped_study, latent_pe_study,
timbre_counts_study): train crops through the codec, mlass-pe set up as the benchmark runs
it, and variants separated on the same chunks and seeds, printed as a paired table."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

SOURCES = ("bass", "drums", "other")
CROP_SECONDS = 2.0  # as the bundle's count tables
BATCH = 16

# (mixture (L,), seed) -> stems (N, L): one way of separating, compared with the others
Variant = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class EncodedCrops:
    """One batch of train crops, edges trimmed as in the count tables (EDGE_TOKENS)."""

    sources: torch.Tensor  # (3, B, T) tokens of bass, drums, other
    mixture: torch.Tensor  # (B, T) tokens of their mean
    latents: torch.Tensor  # (B, T, D) the encoder's output for the mean, before quantisation


def encoded_train_crops(
    codec,
    corpus: str,
    crops: int,
    seed: int,
    transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
) -> Iterator[EncodedCrops]:
    """Random 2-s train crops with random stem gains (±6 dB, as the counts), optionally
    transformed (crops (B, N, L), rng) -> crops, encoded batch by batch."""
    from latsep.training.counts import EDGE_TOKENS
    from latsep.training.data import StemStore

    store = StemStore(corpus, "train", SOURCES)
    hop = codec.hop_length
    length = round(CROP_SECONDS * codec.sample_rate / hop) * hop
    rng = np.random.default_rng(seed)
    with torch.inference_mode():
        for done in range(0, crops, BATCH):
            audio = store.crops(rng, min(BATCH, crops - done), length, (-6, 6))
            if transform is not None:
                audio = transform(audio, rng)
            audio = torch.from_numpy(audio)
            b = audio.shape[0]
            sources = codec.encode(audio.transpose(0, 1).reshape(3 * b, -1)).reshape(3, b, -1)
            latents = codec.embed(audio.mean(1))  # (B, D, T)
            mixture = codec.quantize(latents)  # what codec.encode of the mean gives
            cut = slice(EDGE_TOKENS, sources.shape[-1] - EDGE_TOKENS)
            yield EncodedCrops(sources[..., cut], mixture[:, cut], latents.transpose(1, 2)[:, cut])
            print(f"{done + b}/{crops} crops", flush=True)


def cpu_bundle(bundle_dir: str, threads: int):
    """The bundle loaded on the CPU, torch limited to `threads` threads (the studies' setting)."""
    from latsep.bundle import load_bundle

    torch.set_num_threads(threads)
    return load_bundle(bundle_dir, torch.device("cpu"))


def mlass_pe3(bundle_dir: str, threads: int, **overrides):
    """(bundle, settings, Separator) for mlass-pe with three sources: the bundle's defaults,
    `overrides` (evaluation.config.Overrides fields) on top, CPU, `threads` torch threads."""
    from latsep.evaluation.config import Overrides, method_settings
    from latsep.models.separation import Separator

    bundle = cpu_bundle(bundle_dir, threads)
    settings = method_settings(
        "mlass-pe", 3, Overrides(**overrides), bundle.separation_defaults("mlass-pe", 3)
    )
    return bundle, settings, Separator(bundle, "mlass-pe", SOURCES)


def with_likelihood(separator, settings, likelihood) -> Variant:
    """The separator's output with `likelihood` in place of the bundle's."""

    def run(mixture: np.ndarray, seed: int) -> np.ndarray:
        separator.likelihood = likelihood
        return separator.separate(mixture, settings, seed=seed).stems

    return run


def crop_arguments(parser: argparse.ArgumentParser, crops: int) -> None:
    """The flags of a study's stage over train crops (`encoded_train_crops`)."""
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--crops", type=int, default=crops)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of a study's separation stage (`mlass_pe3`, `compare`)."""
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--split", default="valid", choices=["valid", "test"])
    parser.add_argument("--chunks", type=int, default=32)
    parser.add_argument("--level-db", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)


def compare(variants: dict[str, Variant], args: argparse.Namespace, rate: int) -> None:
    """Every variant on the same chunks and seeds (the benchmark's; `run_arguments` say
    which), SDR margins over mixture/3 per chunk as they come, then the table paired with
    the first variant."""
    from latsep.corpus import evaluation_chunks
    from latsep.evaluation.runner import chunk_seed
    from latsep.models.metrics import bss_sdr

    chunks = evaluation_chunks(
        args.corpus, SOURCES, split=args.split, seconds=3.0, count=args.chunks, seed=0
    )
    rows: dict[str, list[np.ndarray]] = {}
    for n, chunk in enumerate(chunks):
        stems = np.asarray(chunk.stems, np.float64) * 10.0 ** (args.level_db / 20.0)
        mixture = stems.sum(0)
        baseline = bss_sdr(stems, np.repeat(mixture[None] / 3, 3, 0), rate)
        line = []
        for name, variant in variants.items():
            margin = bss_sdr(stems, variant(mixture, chunk_seed(0, chunk)), rate) - baseline
            rows.setdefault(name, []).append(margin)
            line.append(" ".join(f"{m:+.2f}" for m in margin))
        print(f"{n + 1}/{len(chunks)} " + " | ".join(line), flush=True)
    print_paired(rows, next(iter(variants)), "margin over mixture/3 (bass drums other)")


def print_paired(rows: dict[str, list[np.ndarray]], reference: str, what: str) -> None:
    """rows: variant → one (N,) margin per chunk; prints each variant's mean margin and its
    paired difference from `reference`, mean ± standard error."""
    first = np.array(rows[reference])
    print(f"{len(first)} chunks; {what}; paired with {reference}")
    for name, values in rows.items():
        margin = np.array(values)
        diff = margin - first
        se = diff.std(0, ddof=1) / math.sqrt(len(diff))
        cells = " ".join(f"{m:+.2f}" for m in margin.mean(0))
        diffs = " ".join(f"{d:+.2f} ± {s:.2f}" for d, s in zip(diff.mean(0), se, strict=True))
        print(f"{name:20s} {cells}   | {diffs}")
