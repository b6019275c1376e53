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

from studies import (
    compare,
    cpu_bundle,
    crop_arguments,
    encoded_train_crops,
    mlass_pe3,
    run_arguments,
    with_likelihood,
)


def fit(args: argparse.Namespace) -> None:

    bundle = cpu_bundle(args.bundle, args.threads)
    k = bundle.num_tokens
    sums = counts = squares = None
    start = time.perf_counter()
    for batch in encoded_train_crops(bundle.codec, args.corpus, args.crops, args.seed):
        tokens = batch.sources.reshape(3, -1)
        latent = batch.latents.double().reshape(-1, batch.latents.shape[-1])  # (B·T, D)
        if sums is None:
            sums = torch.zeros(3, k, latent.shape[1], dtype=torch.float64)
            counts = torch.zeros(3, k, dtype=torch.float64)
            squares = torch.zeros(3, k, dtype=torch.float64)
        for i in range(3):
            sums[i].index_add_(0, tokens[i], latent)
            counts[i].index_add_(0, tokens[i], torch.ones(len(latent), dtype=torch.float64))
            squares[i].index_add_(0, tokens[i], latent.pow(2).sum(1))
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
    bundle, settings, separator = mlass_pe3(
        args.bundle, args.threads, num_candidates=args.candidates, search=args.search
    )
    base = separator.likelihood
    data = np.load(args.fit)
    means, sigma = torch.from_numpy(data["means"]).double(), torch.from_numpy(data["sigma"])
    variants = {"mlass-pe": with_likelihood(separator, settings, base)}
    for w in args.weights:
        latent = latent_marginal(base, means, sigma, w)
        variants[f"latent w' {w:g}"] = with_likelihood(separator, settings, latent)
    compare(variants, args, bundle.sample_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    f = commands.add_parser("fit", help="fit g_i and σ_i on train crops")
    crop_arguments(f, crops=600)
    r = commands.add_parser("run", help="separate chunks, mlass-pe vs the latent term")
    run_arguments(r)
    r.add_argument("--fit", required=True)
    r.add_argument("--weights", type=float, nargs="+", default=[0.25, 0.5])
    r.add_argument("--search", default="sample")
    r.add_argument("--candidates", type=int, default=16)
    args = parser.parse_args()
    fit(args) if args.command == "fit" else run(args)


if __name__ == "__main__":
    main()
