"""Micro-benchmark of the separation engine: milliseconds per mixture token, and its overhead.

For each method, K and number of candidates C, one `separate()` call over `--steps` mixture
tokens with real `TransformerPrior(PriorConfig.default(K))` priors (random weights: timing
only). Every prior call is timed through a proxy, so the table splits the step into the
priors' forward passes and everything else (the engine's overhead). Tables are synthetic
but shaped like real ones: `--triples` counted (z1, z2, y) tuples with Zipf-like codes.
The last section times a 3-second chunk (1,000 tokens, 16 candidates) end to end.

`--waveform` instead times the whole `separate_waveform` call on a 3-second chunk with
random-weight models of the default sizes (codec hop 128, K = 512; prior context 544,
d_model 128, 3 layers), split into encode, the priors' forward passes, the rest of the
engine, decoding every candidate, and ranking + Wiener stems (median of `--repeats` runs).
Random priors are near-uniform, so sparse-likelihood work may differ from trained ones.

    .venv/bin/python bench/synthetic_speed.py                 # full table (~10 min on 2 cores)
    .venv/bin/python bench/synthetic_speed.py --quick         # K = 256 only, fewer steps
    .venv/bin/python bench/synthetic_speed.py --waveform --threads 1 2 --candidates 4 8 16
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from latsep.models.likelihood import (
    ChainLikelihood,
    CountLikelihood,
    GaussianLikelihood,
    MarginalLikelihood,
    nearest_midpoints,
)
from latsep.models.prior.transformer import PriorConfig, TransformerPrior
from latsep.models.separation import pipeline, separate

WAVEFORM_METHODS = [
    "lass",
    "hybrid",
    "lqvae",
    "mlass-bp:2",
    "mlass-bp:3",
    "mlass-pe:2",
    "mlass-pe:3",
]

SOURCES = {"lass": 2, "hybrid": 2, "lqvae": 2, "mlass-bp": 3, "mlass-pe": 3}


@dataclass
class Clock:
    seconds: float = 0.0


@dataclass
class TimedPrior:
    """Forwards the Prior protocol (and `prime`) to `prior`, adding the time spent to `clock`."""

    prior: Any
    clock: Clock = field(default_factory=Clock)

    @property
    def num_tokens(self) -> int:
        return self.prior.num_tokens

    @property
    def context(self) -> int:
        return self.prior.context

    def _timed(self, name: str, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return getattr(self.prior, name)(*args)
        finally:
            self.clock.seconds += time.perf_counter() - start

    def initial_state(self, batch_size: int) -> Any:
        return self._timed("initial_state", batch_size)

    def log_probs(self, state: Any) -> torch.Tensor:
        return self._timed("log_probs", state)

    def advance(self, state: Any, tokens: torch.Tensor) -> Any:
        return self._timed("advance", state, tokens)

    def select(self, state: Any, rows: torch.Tensor) -> Any:
        return self._timed("select", state, rows)

    def prime(self, state: Any, tokens: torch.Tensor) -> Any:
        return self._timed("prime", state, tokens)


def synthetic_triples(k: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """(3, count) tuples (z1, z2, y): Zipf-like codes, y a noisy function of the pair."""
    ranks = torch.arange(1, k + 1, dtype=torch.float64)
    zipf = 1.0 / ranks
    permutation = torch.randperm(k, generator=generator)
    a = permutation[torch.multinomial(zipf, count, replacement=True, generator=generator)]
    b = permutation[torch.multinomial(zipf, count, replacement=True, generator=generator)]
    noise = torch.randint(-2, 3, (count,), generator=generator)
    y = ((a + b) // 2 + noise).clamp(0, k - 1)
    return torch.stack([a, b, y])


def build_likelihood(
    method: str, k: int, triples: int, smoothing: float, sources: int | None = None
) -> tuple[object, float]:
    """The method's likelihood from synthetic counts, and the seconds it took to build."""
    sources = sources or SOURCES[method]
    g = torch.Generator().manual_seed(k)
    start = time.perf_counter()
    if method in ("lass", "hybrid"):
        t = synthetic_triples(k, triples, g)
        likelihood: object = CountLikelihood.from_sparse(t, torch.ones(triples), k, smoothing)
    elif method == "mlass-bp":
        levels = [synthetic_triples(k, triples, g) for _ in range(sources - 1)]
        likelihood = ChainLikelihood.from_sparse(
            levels, [torch.ones(triples)] * len(levels), k, smoothing
        )
    elif method == "mlass-pe":
        t = synthetic_triples(k, triples, g)
        index = torch.stack([torch.randint(0, sources, (triples,), generator=g), t[0], t[2]])
        likelihood = MarginalLikelihood.from_sparse(
            index, torch.ones(triples), sources, k, smoothing
        )
    else:
        codebook = torch.randn(k, 64, generator=g)
        likelihood = GaussianLikelihood(
            codebook, sigma=1.0, nearest_midpoint=nearest_midpoints(codebook)
        )
    return likelihood, time.perf_counter() - start


def time_separation(
    method: str,
    priors: list[TimedPrior],
    likelihood: object,
    steps: int,
    candidates: int,
    top_k: int | None,
    search: str = "sample",
) -> dict[str, float]:
    k = priors[0].num_tokens
    g = torch.Generator().manual_seed(0)
    mixture = torch.randint(0, k, (steps,), generator=g)
    # Warm-up: first-call allocations and thread start-up do not belong in the numbers.
    separate(
        method,
        priors,
        likelihood,
        mixture[:2],
        num_candidates=candidates,
        top_k=top_k,
        search=search,
        generator=g,
    )
    for prior in priors:
        prior.clock.seconds = 0.0
    start = time.perf_counter()
    separate(
        method,
        priors,
        likelihood,
        mixture,
        num_candidates=candidates,
        top_k=top_k,
        search=search,
        generator=g,
    )
    wall = time.perf_counter() - start
    prior_seconds = sum(p.clock.seconds for p in priors)
    return {
        "ms_per_token": 1000 * wall / steps,
        "prior_ms_per_token": 1000 * prior_seconds / steps,
        "engine_ms_per_token": 1000 * (wall - prior_seconds) / steps,
        "overhead": (wall - prior_seconds) / wall,
    }


@dataclass
class TimedCodec:
    """Forwards the separation Codec protocol to `codec`, timing encode and decode."""

    codec: Any
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0

    @property
    def hop_length(self) -> int:
        return self.codec.hop_length

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        try:
            return self.codec.encode(audio)
        finally:
            self.encode_seconds += time.perf_counter() - start

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        try:
            return self.codec.decode(tokens)
        finally:
            self.decode_seconds += time.perf_counter() - start


def waveform_models(k: int, triples: int, smoothing: float) -> tuple[Any, list[Any], dict]:
    """Random-weight default-size codec and three priors, and every method's likelihood."""
    from latsep.models.codec import Codec, CodecConfig

    torch.manual_seed(0)
    codec = Codec(CodecConfig(num_tokens=k, strides=(4, 4, 8))).eval()
    config = PriorConfig(num_tokens=k, context=544, d_model=128, num_layers=3, num_heads=4)
    priors = [TransformerPrior(config).eval() for _ in range(3)]
    likelihoods: dict[str, object] = {}
    for name in WAVEFORM_METHODS:
        method, _, n = name.partition(":")
        if method == "lqvae":
            codebook = codec.codebook.detach().float()
            likelihoods[name] = GaussianLikelihood(
                codebook, sigma=1.0, nearest_midpoint=nearest_midpoints(codebook)
            )
        elif method != "hybrid":
            likelihoods[name], _ = build_likelihood(
                method, k, triples, smoothing, int(n) if n else None
            )
    likelihoods["hybrid"] = likelihoods["lass"]
    return codec, priors, likelihoods


def time_waveform(
    name: str,
    codec: Any,
    priors: list[Any],
    likelihood: object,
    candidates: int,
    seconds: float,
    decode_bf16: bool = False,
) -> dict[str, float]:
    """One `separate_waveform` call on `seconds` of noise, split into its parts (seconds)."""
    method, _, n = name.partition(":")
    n_sources = int(n) if n else 2
    timed_codec = TimedCodec(codec)
    timed_priors = [TimedPrior(p) for p in priors[:n_sources]]
    engine = Clock()
    original = pipeline.separate

    def timed_separate(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            engine.seconds += time.perf_counter() - start

    rng = torch.Generator().manual_seed(1)
    mixture = (0.1 * torch.randn(int(seconds * codec.sample_rate), generator=rng)).numpy()
    pipeline.separate = timed_separate
    try:
        start = time.perf_counter()
        options = {"codec_bf16": True} if decode_bf16 else {}
        pipeline.separate_waveform(
            method,
            timed_codec,
            timed_priors,
            likelihood,
            mixture,
            num_candidates=candidates,
            **options,
        )
        wall = time.perf_counter() - start
    finally:
        pipeline.separate = original
    tokens = -(-mixture.shape[0] // codec.hop_length)
    prior_s = sum(p.clock.seconds for p in timed_priors)
    return {
        "seconds": wall,
        "ms_per_token": 1000 * engine.seconds / tokens,
        "encode": timed_codec.encode_seconds,
        "priors": prior_s,
        "engine_rest": engine.seconds - prior_s,
        "decode": timed_codec.decode_seconds,
        "rank_wiener": wall
        - engine.seconds
        - timed_codec.encode_seconds
        - timed_codec.decode_seconds,
    }


def waveform_main(args: argparse.Namespace) -> None:
    codec, priors, likelihoods = waveform_models(args.k, args.triples, args.smoothing)
    print(
        f"torch {torch.__version__}; separate_waveform on {args.seconds} s; codec hop "
        f"{codec.hop_length}, K={args.k}; priors context 544, d_model 128, 3 layers (random "
        f"weights); {args.triples:,} counted triples, smoothing {args.smoothing}; "
        f"median of {args.repeats}; decode {'bf16' if args.decode_bf16 else 'fp32'}"
    )
    print(
        "| method | threads | C | s/chunk | ms/token (engine) | encode s | priors s | "
        "engine rest s | decode s | rank+wiener s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in args.methods:
            for candidates in args.candidates:
                models = (name, codec, priors, likelihoods[name], candidates)
                time_waveform(*models, 0.2, args.decode_bf16)  # warm-up
                runs = [
                    time_waveform(*models, args.seconds, args.decode_bf16)
                    for _ in range(args.repeats)
                ]
                r = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
                rows.append({"method": name, "threads": threads, "c": candidates, **r})
                print(
                    f"| {name} | {threads} | {candidates} | {r['seconds']:.2f} | "
                    f"{r['ms_per_token']:.2f} | {r['encode']:.2f} | {r['priors']:.2f} | "
                    f"{r['engine_rest']:.2f} | {r['decode']:.2f} | {r['rank_wiener']:.2f} |",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--candidates", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--top-ks", type=str, nargs="+", default=["none", "64"])
    parser.add_argument("--methods", nargs="+", default=list(SOURCES))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument(
        "--beam-candidates", type=int, nargs="*", default=[16], help="beam widths for lass"
    )
    parser.add_argument("--triples", type=int, default=1_000_000)
    parser.add_argument("--smoothing", type=float, default=0.01)
    parser.add_argument("--chunk-tokens", type=int, default=1000, help="0 skips the chunk run")
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=str, default=None)
    parser.add_argument("--waveform", action="store_true", help="time separate_waveform")
    parser.add_argument("--k", type=int, default=512, help="K for --waveform")
    parser.add_argument("--seconds", type=float, default=3.0, help="chunk for --waveform")
    parser.add_argument("--repeats", type=int, default=3, help="runs per row for --waveform")
    parser.add_argument(
        "--decode-bf16", action="store_true", help="--waveform: decode under bf16 autocast"
    )
    args = parser.parse_args()
    if args.waveform:
        if args.methods == list(SOURCES):
            args.methods = WAVEFORM_METHODS
        if args.candidates == [16, 64]:
            args.candidates = [4, 8, 16]
        if args.triples == 1_000_000:
            args.triples = 3_000_000
        waveform_main(args)
        return
    if args.quick:
        args.ks, args.steps, args.chunk_tokens = [256], 8, 0
    torch.set_num_threads(args.threads[0])
    top_ks = [None if t == "none" else int(t) for t in args.top_ks]

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; prior: "
        "TransformerPrior(PriorConfig.default(K)), random weights; "
        f"{args.triples:,} counted triples, smoothing {args.smoothing}"
    )
    print("| method | N | K | C | top_k | ms/token | priors ms | engine ms | overhead |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for k in args.ks:
        torch.manual_seed(0)
        base_priors = [TransformerPrior(PriorConfig.default(k)).eval() for _ in range(3)]
        for method in args.methods:
            likelihood, build_s = build_likelihood(method, k, args.triples, args.smoothing)
            print(f"<!-- {method} K={k}: likelihood built in {build_s:.1f} s -->", flush=True)
            n = SOURCES[method]
            priors = [TimedPrior(p) for p in base_priors[:n]]
            for candidates in args.candidates:
                for top_k in top_ks:
                    r = time_separation(method, priors, likelihood, args.steps, candidates, top_k)
                    rows.append(
                        {"method": method, "n": n, "k": k, "c": candidates, "top_k": top_k, **r}
                    )
                    print(
                        f"| {method} | {n} | {k} | {candidates} | {top_k} | "
                        f"{r['ms_per_token']:.1f} | {r['prior_ms_per_token']:.1f} | "
                        f"{r['engine_ms_per_token']:.1f} | {100 * r['overhead']:.0f}% |",
                        flush=True,
                    )
            if method == "lass":
                for candidates in args.beam_candidates:
                    r = time_separation(
                        method, priors, likelihood, args.steps, candidates, 64, search="beam"
                    )
                    rows.append(
                        {"method": "lass-beam", "n": 2, "k": k, "c": candidates, "top_k": 64, **r}
                    )
                    print(
                        f"| lass (beam) | 2 | {k} | {candidates} | 64 | "
                        f"{r['ms_per_token']:.1f} | {r['prior_ms_per_token']:.1f} | "
                        f"{r['engine_ms_per_token']:.1f} | {100 * r['overhead']:.0f}% |",
                        flush=True,
                    )

    if args.chunk_tokens:
        k = 1024
        torch.manual_seed(0)
        priors = [TimedPrior(TransformerPrior(PriorConfig.default(k)).eval()) for _ in range(2)]
        likelihood, _ = build_likelihood("lass", k, args.triples, args.smoothing)
        print(f"\n3-second chunk: lass, K={k}, {args.chunk_tokens} tokens, 16 candidates")
        for top_k in top_ks:
            r = time_separation("lass", priors, likelihood, args.chunk_tokens, 16, top_k)
            total = r["ms_per_token"] * args.chunk_tokens / 1000
            rows.append({"method": "chunk", "k": k, "c": 16, "top_k": top_k, "seconds": total, **r})
            print(
                f"top_k={top_k}: {total:.1f} s total, priors {r['prior_ms_per_token']:.1f} "
                f"ms/token, engine {r['engine_ms_per_token']:.1f} ms/token "
                f"({100 * r['overhead']:.0f}%)",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
