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

from paired import print_paired

SOURCES = ("bass", "drums", "other")


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
    pairs = list(itertools.combinations(range(3), 2))
    counters = {p: SparseCounter((k, k, k)) for p in pairs}
    start = time.perf_counter()
    with torch.inference_mode():
        for done in range(0, args.crops, 16):
            crops = torch.from_numpy(store.crops(rng, min(16, args.crops - done), length, (-6, 6)))
            signals = torch.cat([crops[:, 0], crops[:, 1], crops[:, 2], crops.mean(1)])
            tokens = codec.encode(signals).numpy()[:, EDGE_TOKENS:-EDGE_TOKENS]
            tokens = tokens.reshape(4, crops.shape[0], -1)  # bass, drums, other, mixture
            for i, j in pairs:
                counters[(i, j)].add(tokens[i], tokens[j], tokens[3])
            print(f"{done + crops.shape[0]}/{args.crops} crops", flush=True)
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
    from latsep.bundle import load_bundle
    from latsep.corpus import evaluation_chunks
    from latsep.evaluation.config import Overrides, method_settings
    from latsep.evaluation.runner import chunk_seed
    from latsep.models.likelihood import Backoff, CountLikelihood
    from latsep.models.metrics import bss_sdr
    from latsep.models.separation import Separator, engine

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle, torch.device("cpu"))
    settings = method_settings(
        "mlass-pe",
        3,
        Overrides(num_candidates=args.candidates, search="sample"),
        bundle.separation_defaults("mlass-pe", 3),
    )
    separator = Separator(bundle, "mlass-pe", SOURCES)
    data = np.load(args.tables)
    k = bundle.num_tokens
    groups = [tuple(int(c) for c in g) for g in args.groups]
    pair_likelihoods = {
        g: CountLikelihood.from_sparse(
            torch.from_numpy(data[f"{g[0]}{g[1]}_indices"]),
            torch.from_numpy(data[f"{g[0]}{g[1]}_counts"]),
            k,
            bundle.default_smoothing,
            backoff=Backoff(args.beta, "product"),
        )
        for g in groups
    }
    plain_sampler = engine.step_sampler
    chunks = evaluation_chunks(
        args.corpus, SOURCES, split=args.split, seconds=3.0, count=args.chunks, seed=0
    )
    rows: dict[str, list[np.ndarray]] = {}
    for n, chunk in enumerate(chunks):
        stems = np.asarray(chunk.stems, np.float64) * 10.0 ** (args.level_db / 20.0)
        mixture = stems.sum(0)
        baseline = bss_sdr(stems, np.repeat(mixture[None] / 3, 3, 0), bundle.sample_rate)
        seed = chunk_seed(0, chunk)
        variants: list[tuple[str, object]] = [("mlass-pe", None)]
        variants += [(f"group {SOURCES[g[0]]}+{SOURCES[g[1]]}", g) for g in groups]
        line = []
        for name, group in variants:
            if group is None:
                engine.step_sampler = plain_sampler
            else:
                pair = pair_likelihoods[group]
                engine.step_sampler = lambda m, lik, w, g=group, p=pair: GroupedSampler(
                    lik, p, g, w
                )
            try:
                result = separator.separate(mixture, settings, seed=seed)
            finally:
                engine.step_sampler = plain_sampler
            margin = bss_sdr(stems, result.stems, bundle.sample_rate) - baseline
            rows.setdefault(name, []).append(margin)
            line.append(" ".join(f"{m:+.2f}" for m in margin))
        print(f"{n + 1}/{len(chunks)} " + " | ".join(line), flush=True)
    print_paired(rows, "mlass-pe", "margin over mixture/3 (bass drums other)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("count", help="count the pair-in-mixture tables")
    c.add_argument("--bundle", required=True)
    c.add_argument("--corpus", required=True)
    c.add_argument("--crops", type=int, default=1200)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--out", required=True)
    r = commands.add_parser("run", help="separate valid chunks, mlass-pe vs grouped")
    r.add_argument("--bundle", required=True)
    r.add_argument("--corpus", required=True)
    r.add_argument("--tables", required=True)
    r.add_argument("--groups", nargs="+", default=["01", "02"], help="pairs kept joint: 01 02 12")
    r.add_argument("--beta", type=float, default=16.0, help="product backoff strength")
    r.add_argument("--split", default="valid", choices=["valid", "test"])
    r.add_argument("--chunks", type=int, default=32)
    r.add_argument("--candidates", type=int, default=16)
    r.add_argument("--level-db", type=float, default=0.0)
    r.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    count(args) if args.command == "count" else run(args)


if __name__ == "__main__":
    main()
