"""Three sources, mlass-pe also scoring the mixture's continuous latent: does it help?

mlass-pe scores each source's code z_i by p(y | z_i), y the mixture's token — one of K codes
for three sources at once. The encoder's continuous latent m of the mixture carries more: here
each source also gets a Gaussian term N(m; g_i(z_i), σ_i² I)^w', g_i(z) = E[m | z_i = z] and
σ_i fitted on train crops (the regression of the mixture latent on one source's code), so the
per-step draw stays exact and independent per source:

    z_i ∝ u_i(z) · p(y | z)^w · exp(−‖m − g_i(z)‖² / 2σ_i²)^w'

    # 1. fit g_i and σ_i on train crops (CPU, one thread)
    .venv/bin/python bench/latent_pe_study.py fit --bundle artifacts/default/plain \
        --corpus data/corpus --crops 600 --out /tmp/study/latent-pe.npz
    # 2. separate valid chunks with mlass-pe and with the latent term at each w', paired
    .venv/bin/python bench/latent_pe_study.py run --bundle artifacts/default/plain \
        --corpus data/corpus --fit /tmp/study/latent-pe.npz --weights 0.25 0.5 --chunks 32

An exploratory study, not a method of the service (search "sample" by default).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from paired import print_paired

SOURCES = ("bass", "drums", "other")


def fit(args: argparse.Namespace) -> None:
    from latsep.bundle import load_bundle
    from latsep.training.counts import EDGE_TOKENS
    from latsep.training.data import StemStore

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle, torch.device("cpu"))
    codec, k = bundle.codec, bundle.num_tokens
    store = StemStore(args.corpus, "train", SOURCES)
    hop = codec.hop_length
    length = round(2.0 * codec.sample_rate / hop) * hop
    rng = np.random.default_rng(args.seed)
    sums = counts = squares = None
    start = time.perf_counter()
    with torch.inference_mode():
        for done in range(0, args.crops, 16):
            crops = torch.from_numpy(store.crops(rng, min(16, args.crops - done), length, (-6, 6)))
            b = crops.shape[0]
            tokens = codec.encode(crops.transpose(0, 1).reshape(3 * b, -1)).reshape(3, b, -1)
            latent = codec.embed(crops.mean(1)).double().transpose(1, 2)  # (B, T, D)
            cut = slice(EDGE_TOKENS, tokens.shape[-1] - EDGE_TOKENS)
            tokens, latent = (
                tokens[:, :, cut].reshape(3, -1),
                latent[:, cut].reshape(-1, latent.shape[-1]),
            )
            if sums is None:
                sums = torch.zeros(3, k, latent.shape[1], dtype=torch.float64)
                counts = torch.zeros(3, k, dtype=torch.float64)
                squares = torch.zeros(3, k, dtype=torch.float64)
            for i in range(3):
                sums[i].index_add_(0, tokens[i], latent)
                counts[i].index_add_(0, tokens[i], torch.ones(len(latent), dtype=torch.float64))
                squares[i].index_add_(0, tokens[i], latent.pow(2).sum(1))
            print(f"{done + b}/{args.crops} crops", flush=True)
    assert sums is not None and counts is not None and squares is not None
    overall = sums.sum(1) / counts.sum(1, keepdim=True)  # (3, D): for codes never seen
    means = torch.where(
        counts[..., None] > 0, sums / counts.clamp(min=1)[..., None], overall[:, None]
    )
    # σ_i² = E‖m − g_i(z_i)‖² / D over the counted frames
    residual = squares.sum(1) - (means.pow(2).sum(2) * counts).sum(1)
    sigma = (residual / (counts.sum(1) * means.shape[2])).sqrt()
    np.savez(args.out, means=means.float().numpy(), sigma=sigma.numpy(), counts=counts.numpy())
    seconds = time.perf_counter() - start
    print(f"{args.out}: σ {sigma.numpy().round(3)}, {int(counts[0].sum())} frames, {seconds:.0f} s")


def latent_marginal(base, means: torch.Tensor, sigma: torch.Tensor, weight: float):
    """mlass-pe's MarginalLikelihood plus the Gaussian latent term, bound per mixture by
    `observing(tokens, latents)` (the pipeline's hook for latent likelihoods)."""
    from latsep.models.likelihood.marginal import MarginalLikelihood

    class LatentMarginal(MarginalLikelihood):
        latent_sigma = float(sigma.mean())  # tells observe_mixture to pass the latents

        def __init__(self, tokens=None, latents=None):  # shares the base tables
            self.__dict__.update(base.__dict__)
            self._tokens, self._latents = tokens, latents

        def observing(self, tokens, latents):
            return LatentMarginal(tokens.long(), latents.double())

        @property
        def num_observations(self) -> int:
            return self._tokens.shape[0]

        def column(self, t: int) -> torch.Tensor:
            p = MarginalLikelihood.column(self, int(self._tokens[t]))  # (n, K)
            distance = (means - self._latents[t]).pow(2).sum(2)  # (n, K)
            log_gauss = -distance / (2 * sigma[:, None] ** 2)
            log_gauss = log_gauss - log_gauss.max(1, keepdim=True).values  # scale per source
            return p * torch.exp(weight * log_gauss)

        def log_prob(self, z, y):
            return torch.stack(
                [
                    self.column(int(t))[torch.arange(z.shape[1]), r]
                    for t, r in zip(y, z, strict=True)
                ]
            ).log()

    return LatentMarginal()


def run(args: argparse.Namespace) -> None:
    from latsep.bundle import load_bundle
    from latsep.corpus import evaluation_chunks
    from latsep.evaluation.config import Overrides, method_settings
    from latsep.evaluation.runner import chunk_seed
    from latsep.models.metrics import bss_sdr
    from latsep.models.separation import Separator

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle, torch.device("cpu"))
    settings = method_settings(
        "mlass-pe",
        3,
        Overrides(num_candidates=args.candidates, search=args.search),
        bundle.separation_defaults("mlass-pe", 3),
    )
    separator = Separator(bundle, "mlass-pe", SOURCES)
    base = separator.likelihood
    data = np.load(args.fit)
    means, sigma = torch.from_numpy(data["means"]).double(), torch.from_numpy(data["sigma"])
    variants = {"mlass-pe": base}
    for w in args.weights:
        variants[f"latent w' {w:g}"] = latent_marginal(base, means, sigma, w)
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
    print_paired(rows, "mlass-pe", "margin over mixture/3 (bass drums other)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    f = commands.add_parser("fit", help="fit g_i and σ_i on train crops")
    f.add_argument("--bundle", required=True)
    f.add_argument("--corpus", required=True)
    f.add_argument("--crops", type=int, default=600)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--threads", type=int, default=1)
    f.add_argument("--out", required=True)
    r = commands.add_parser("run", help="separate chunks, mlass-pe vs the latent term")
    r.add_argument("--bundle", required=True)
    r.add_argument("--corpus", required=True)
    r.add_argument("--fit", required=True)
    r.add_argument("--weights", type=float, nargs="+", default=[0.25, 0.5])
    r.add_argument("--search", default="sample")
    r.add_argument("--split", default="valid", choices=["valid", "test"])
    r.add_argument("--chunks", type=int, default=32)
    r.add_argument("--candidates", type=int, default=16)
    r.add_argument("--level-db", type=float, default=0.0)
    r.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    fit(args) if args.command == "fit" else run(args)


if __name__ == "__main__":
    main()
