"""Micro-benchmark of the separation engine: milliseconds per mixture token, and its overhead.

For each method, K and number of candidates C, one `separate()` call over `--steps` mixture
tokens with real `TransformerPrior(PriorConfig.default(K))` priors (random weights: timing
only). Every prior call is timed through a proxy, so the table splits the step into the
priors' forward passes and everything else (the engine's overhead). Tables are synthetic
but shaped like real ones: `--triples` counted (z1, z2, y) tuples with Zipf-like codes.
The last section times a 3-second chunk (1,000 tokens, 16 candidates) end to end.

    .venv/bin/python bench/engine.py                 # full table (~10 min on 2 cores)
    .venv/bin/python bench/engine.py --quick         # K = 256 only, fewer steps
"""

from __future__ import annotations

import argparse
import json
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
from latsep.models.separation import separate

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


def build_likelihood(method: str, k: int, triples: int, smoothing: float) -> tuple[object, float]:
    """The method's likelihood from synthetic counts, and the seconds it took to build."""
    g = torch.Generator().manual_seed(k)
    start = time.perf_counter()
    if method in ("lass", "hybrid"):
        t = synthetic_triples(k, triples, g)
        likelihood: object = CountLikelihood.from_sparse(t, torch.ones(triples), k, smoothing)
    elif method == "mlass-bp":
        levels = [synthetic_triples(k, triples, g) for _ in range(SOURCES[method] - 1)]
        likelihood = ChainLikelihood.from_sparse(
            levels, [torch.ones(triples)] * len(levels), k, smoothing
        )
    elif method == "mlass-pe":
        t = synthetic_triples(k, triples, g)
        index = torch.stack(
            [torch.randint(0, SOURCES[method], (triples,), generator=g), t[0], t[2]]
        )
        likelihood = MarginalLikelihood.from_sparse(
            index, torch.ones(triples), SOURCES[method], k, smoothing
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
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    if args.quick:
        args.ks, args.steps, args.chunk_tokens = [256], 8, 0
    torch.set_num_threads(args.threads)
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
