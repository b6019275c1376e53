"""Three sources with a pair kept together: does a joint p(y | z_i, z_j) help mlass-pe?

mlass-pe treats the three sources as independent given the mixture token y, each scored by
its own p(y | z_i). A "grouped" extractor keeps one pair joint instead: (z_i, z_j) drawn
together from ∝ u_i u_j p(y | z_i, z_j)^w, the third source from ∝ u_k p(y | z_k)^w, where
p(y | z_i, z_j) counts the pair's tokens against the token of the *three*-source mixture (the
third source summed out, as the data do), with the product backoff to
p(y | z_i) p(y | z_j) / p(y) — so where the pair was never seen it is mlass-pe again.

    # 1. count the three pair-in-mixture tables over train crops (CPU, one thread)
    .venv/bin/python bench/grouped_study.py count --bundle artifacts/default/plain \
        --corpus data/corpus --crops 1200 --out /tmp/study/pair-in-mix.npz
    # 2. separate valid chunks with mlass-pe and with each grouping, paired, same seeds
    .venv/bin/python bench/grouped_study.py run --bundle artifacts/default/plain \
        --corpus data/corpus --tables /tmp/study/pair-in-mix.npz --chunks 32

An exploratory study, not a method of the service: it swaps the engine's per-step sampler
for mlass-pe's likelihood (search "sample" only: the grouped draw reports no evidence).
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from studies import (
    SOURCES,
    Variant,
    compare,
    cpu_bundle,
    crop_arguments,
    encoded_train_crops,
    mlass_pe3,
    run_arguments,
    with_likelihood,
)


def count(args: argparse.Namespace) -> None:
    from latsep.training.counts import SparseCounter

    bundle = cpu_bundle(args.bundle, args.threads)
    k = bundle.num_tokens
    pairs = list(itertools.combinations(range(3), 2))
    counters = {p: SparseCounter((k, k, k)) for p in pairs}
    start = time.perf_counter()
    for batch in encoded_train_crops(bundle.codec, args.corpus, args.crops, args.seed):
        sources, mixture = batch.sources.numpy(), batch.mixture.numpy()
        for i, j in pairs:
            counters[(i, j)].add(sources[i], sources[j], mixture)
    out = {}
    for (i, j), counter in counters.items():
        indices, counts = counter.coo()
        out[f"{i}{j}_indices"], out[f"{i}{j}_counts"] = indices, counts
    np.savez(args.out, **out)
    seconds = time.perf_counter() - start
    print(
        f"{args.out}: {len(pairs)} tables, {counters[pairs[0]].total} triples each, {seconds:.0f} s"
    )


class GroupedSampler:
    """(z_i, z_j) jointly from the pair-in-mixture table, z_k from the marginal table."""

    independent_sources = False

    def __init__(self, marginal, pair_likelihood, group: tuple[int, int], weight: float):
        from latsep.models.separation.samplers import MarginalSampler, PairSampler

        self.marginal = MarginalSampler(marginal, weight)
        self.pair = PairSampler(pair_likelihood, weight)
        self.group = group
        self.alone = ({0, 1, 2} - set(group)).pop()

    def sample(self, weights, y, generator):
        from latsep.models.separation.samplers import StepDraw

        i, j = self.group
        joint = self.pair.sample([weights[i], weights[j]], y, generator)
        single = self.marginal.sample(weights, y, generator)
        tokens = single.tokens.clone()
        tokens[:, i], tokens[:, j] = joint.tokens[:, 0], joint.tokens[:, 1]
        k = self.alone
        log_lik = joint.log_likelihood + single.source_log_likelihood[:, k]
        fallback = joint.fallback | single.source_fallback[:, k]
        return StepDraw(tokens, log_lik, fallback)


def run(args: argparse.Namespace) -> None:
    from latsep.models.likelihood import Backoff, CountLikelihood
    from latsep.models.separation import engine

    bundle, settings, separator = mlass_pe3(
        args.bundle, args.threads, num_candidates=args.candidates, search="sample"
    )
    data = np.load(args.tables)
    plain_sampler = engine.step_sampler

    def grouped(group: tuple[int, int]) -> Variant:
        """mlass-pe's separation with its per-step sampler swapped for a GroupedSampler."""
        pair = CountLikelihood.from_sparse(
            torch.from_numpy(data[f"{group[0]}{group[1]}_indices"]),
            torch.from_numpy(data[f"{group[0]}{group[1]}_counts"]),
            bundle.num_tokens,
            bundle.default_smoothing,
            backoff=Backoff(args.beta, "product"),
        )

        def run_grouped(mixture: np.ndarray, seed: int) -> np.ndarray:
            engine.step_sampler = lambda m, lik, w: GroupedSampler(lik, pair, group, w)
            try:
                return separator.separate(mixture, settings, seed=seed).stems
            finally:
                engine.step_sampler = plain_sampler

        return run_grouped

    variants = {"mlass-pe": with_likelihood(separator, settings, separator.likelihood)}
    for g in (tuple(int(c) for c in text) for text in args.groups):
        variants[f"group {SOURCES[g[0]]}+{SOURCES[g[1]]}"] = grouped(g)
    compare(variants, args, bundle.sample_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("count", help="count the pair-in-mixture tables")
    crop_arguments(c, crops=1200)
    r = commands.add_parser("run", help="separate valid chunks, mlass-pe vs grouped")
    run_arguments(r)
    r.add_argument("--tables", required=True)
    r.add_argument("--groups", nargs="+", default=["01", "02"], help="pairs kept joint: 01 02 12")
    r.add_argument("--beta", type=float, default=16.0, help="product backoff strength")
    r.add_argument("--candidates", type=int, default=16)
    args = parser.parse_args()
    count(args) if args.command == "count" else run(args)


if __name__ == "__main__":
    main()
