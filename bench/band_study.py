"""Three sources: do band-filtered views of the mixture tell the models which source is which?

One mixture token per step carries 9 bits about three sources' tokens. Each *view* — the
mixture (as the models see it) low-, band- or high-pass filtered, encoded by the same codec —
is a second observation of the step, counted against each source's token as mlass-pe's
marginal table is: p(v_t | z_i). Given the sources' tokens the views are treated as
independent of y and of each other, so they multiply each source's prior weights by
Π_v p(v_t | z_i)^λ before the method's own step draw (a unary factor: exact for every
sampler, and sequential Monte Carlo's evidence includes it).

    .venv/bin/python bench/band_study.py count --bundle artifacts/default/plain \
        --corpus data/corpus --crops 1200 --out /tmp/study/bands.npz
    .venv/bin/python bench/band_study.py run --bundle artifacts/default/plain \
        --corpus data/corpus --method mlass-pe --counts /tmp/study/bands.npz --views low

An exploratory study, not part of the service (three sources, the bundle's defaults).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt

from studies import BATCH, CROP_SECONDS, SOURCES, compare, cpu_bundle, crop_arguments, run_arguments

# view -> (order, cutoff(s) in Hz, kind) of a zero-phase Butterworth filter (tokens stay aligned)
VIEWS = {
    "low": (4, 200.0, "lowpass"),
    "mid": (4, (200.0, 3000.0), "bandpass"),
    "high": (4, 3000.0, "highpass"),
}


def filtered(audio: np.ndarray, view: str, rate: int) -> np.ndarray:
    order, cutoff, kind = VIEWS[view]
    sos = butter(order, cutoff, kind, fs=rate, output="sos")
    return sosfiltfilt(sos, audio, axis=-1).astype(np.float32)


def count(args: argparse.Namespace) -> None:
    from latsep.training.counts import EDGE_TOKENS, SparseCounter
    from latsep.training.data import StemStore

    bundle = cpu_bundle(args.bundle, args.threads)
    codec, k = bundle.codec, bundle.num_tokens
    rate, hop = int(codec.sample_rate), int(codec.hop_length)
    counters = {v: SparseCounter((3, k, k)) for v in VIEWS}
    store = StemStore(args.corpus, "train", SOURCES)
    length = round(CROP_SECONDS * rate / hop) * hop
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    with torch.inference_mode():
        for done in range(0, args.crops, BATCH):
            audio = store.crops(rng, min(BATCH, args.crops - done), length, (-6, 6))
            b = audio.shape[0]
            flat = torch.from_numpy(audio).transpose(0, 1).reshape(3 * b, -1)
            sources = codec.encode(flat).reshape(3, b, -1)
            cut = slice(EDGE_TOKENS, sources.shape[-1] - EDGE_TOKENS)
            sources = sources[..., cut].numpy()
            which = np.broadcast_to(np.arange(3)[:, None, None], sources.shape)
            mean = audio.mean(1)
            for view, counter in counters.items():
                tokens = codec.encode(torch.from_numpy(filtered(mean, view, rate)))[:, cut]
                counter.add(which, sources, np.broadcast_to(tokens.numpy()[None], sources.shape))
            print(f"{done + b}/{args.crops} crops, {time.perf_counter() - start:.0f} s", flush=True)
    arrays = {}
    for view, counter in counters.items():
        indices, counts = counter.coo()
        arrays[f"{view}_indices"], arrays[f"{view}_counts"] = indices, counts
    np.savez(args.out, **arrays)
    print(f"{args.out}: {counters['low'].total} triples per view")


class ViewSampler:
    """The method's step sampler with each source's weights times F[t, i] (the views'
    factors at step t), steps counted from the last `observe_mixture` call."""

    def __init__(self, inner, state: dict) -> None:
        self.inner, self.state = inner, state
        self.independent_sources = inner.independent_sources

    def sample(self, weights, y, generator):
        from latsep.models.separation.weights import SourceWeights

        t = self.state["step"]
        self.state["step"] = t + 1
        assert int(self.state["tokens"][t]) == y, "steps out of order"
        factors = self.state["factors"][t]  # (N, K)
        weights = [
            SourceWeights(w.values * factors[i], w.support, w.log_scale)
            for i, w in enumerate(weights)
        ]
        return self.inner.sample(weights, y, generator)


def run(args: argparse.Namespace) -> None:
    from latsep.evaluation.config import Overrides, method_settings
    from latsep.models.likelihood import MarginalLikelihood
    from latsep.models.separation import Separator, engine, pipeline
    from latsep.models.separation.chunks import encode_samples

    bundle = cpu_bundle(args.bundle, args.threads)
    overrides = {} if args.search is None else {"search": args.search}
    settings = method_settings(
        args.method, 3, Overrides(**overrides), bundle.separation_defaults(args.method, 3)
    )
    separator = Separator(bundle, args.method, SOURCES)
    rate = bundle.sample_rate
    saved = np.load(args.counts)
    tables = {
        v: MarginalLikelihood.from_sparse(
            torch.from_numpy(saved[f"{v}_indices"]),
            torch.from_numpy(saved[f"{v}_counts"]),
            3,
            bundle.num_tokens,
            bundle.default_smoothing,
        )
        for v in VIEWS
    }
    state: dict = {"views": ()}
    observe, sampler_for = pipeline.observe_mixture, engine.step_sampler

    def observe_with_views(codec, likelihood, mixture, gain, n, bf16):
        tokens, likelihood = observe(codec, likelihood, mixture, gain, n, bf16)
        hop = int(codec.hop_length)
        padded = np.zeros(-(-len(mixture) // hop) * hop, dtype=np.float32)
        padded[: len(mixture)] = gain * mixture / n
        factors = torch.ones(tokens.shape[0], 3, bundle.num_tokens, dtype=torch.float64)
        for view, weight in state["views"]:
            view_tokens = encode_samples(codec, filtered(padded, view, rate), bf16)
            columns = torch.stack([tables[view].column(int(v)) for v in view_tokens])
            factors *= columns.pow(weight)
        state.update(step=0, tokens=tokens, factors=factors)
        return tokens, likelihood

    def sampler_with_views(method, likelihood, weight):
        return ViewSampler(sampler_for(method, likelihood, weight), state)

    pipeline.observe_mixture, engine.step_sampler = observe_with_views, sampler_with_views

    def variant(views: tuple):
        def separate(mixture: np.ndarray, seed: int) -> np.ndarray:
            state["views"] = views
            return separator.separate(mixture, settings, seed=seed).stems

        return separate

    variants = {"shipped": variant(())}
    for spec in args.variants:  # "low:1,high:0.5"
        views = tuple((v, float(w)) for v, w in (p.split(":") for p in spec.split(",")))
        variants[spec] = variant(views)
    compare(variants, args, rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("count", help="count each view's table over train crops")
    crop_arguments(c, crops=1200)
    r = commands.add_parser("run", help="separate chunks with and without the views")
    run_arguments(r)
    r.add_argument("--method", default="mlass-pe", choices=["mlass-pe", "mlass-bp"])
    r.add_argument("--search", default=None)
    r.add_argument("--counts", required=True)
    r.add_argument("variants", nargs="+", help="views and weights, e.g. low:1 low:1,high:1")
    args = parser.parse_args()
    count(args) if args.command == "count" else run(args)


if __name__ == "__main__":
    main()
