"""Three sources: do band-filtered views of the mixture tell the models which source is which?

The prototype of models/separation/views.py, before a bundle held views: each view's table
counted over train crops (`count_views`, what `latsep bundle add-views` runs), then the
separation with no views and with each combination of views and weights, paired on the same
chunks and seeds (`Separator.views` set per variant).

    .venv/bin/python bench/band_study.py count --bundle artifacts/default/plain \
        --corpus data/corpus --crops 1200 --out /tmp/study/bands.npz
    .venv/bin/python bench/band_study.py run --bundle artifacts/default/plain \
        --corpus data/corpus --method mlass-pe --counts /tmp/study/bands.npz low:1 low:1,high:1
    # a view the bundle holds for another method, at another weight, on top of the shipped
    .venv/bin/python bench/band_study.py run --bundle artifacts/default/plain \
        --corpus data/corpus --method mlass-pe --reference shipped shipped,bundle:sub:0.35

An exploratory study, not part of the service (three sources, the bundle's defaults).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from latsep.models.separation.views import ViewFilter
from studies import SOURCES, compare, cpu_bundle, crop_arguments, run_arguments

VIEWS = {
    "low": ViewFilter("lowpass", (200.0,)),  # the shipped three
    "mid": ViewFilter("bandpass", (200.0, 3000.0)),
    "high": ViewFilter("highpass", (3000.0,)),
    "sub": ViewFilter("lowpass", (100.0,)),  # narrower, for bass against "other"
    "lowmid": ViewFilter("bandpass", (100.0, 400.0)),
    # steady tones against onsets: the mix's harmonic or percussive part, then a band
    "perc": ViewFilter("full", part="percussive"),
    "harm": ViewFilter("full", part="harmonic"),
    "perclow": ViewFilter("lowpass", (200.0,), part="percussive"),
    "harmlow": ViewFilter("lowpass", (200.0,), part="harmonic"),
}


def count(args: argparse.Namespace) -> None:
    from latsep.training.data import StemStore
    from latsep.training.view_counts import count_views, view_table_name

    bundle = cpu_bundle(args.bundle, args.threads)
    start = time.perf_counter()
    store = StemStore(args.corpus, "train", SOURCES)
    views = {name: VIEWS[name] for name in args.views}
    tables = count_views(bundle.codec, store, views, crops=args.crops, seed=args.seed)
    arrays = {}
    for view in views:
        ((indices, counts),) = tables[view_table_name(view, SOURCES)]
        arrays[f"{view}_indices"], arrays[f"{view}_counts"] = indices, counts
    np.savez(args.out, **arrays)
    print(f"{args.out}: {int(counts.sum())} triples per view, {time.perf_counter() - start:.0f} s")


def run(args: argparse.Namespace) -> None:
    from latsep.evaluation.config import Overrides, method_settings
    from latsep.models.likelihood import MarginalLikelihood
    from latsep.models.separation import Separator
    from latsep.models.separation.views import MixtureView

    bundle = cpu_bundle(args.bundle, args.threads)
    overrides = {} if args.search is None else {"search": args.search}
    settings = method_settings(
        args.method, 3, Overrides(**overrides), bundle.separation_defaults(args.method, 3)
    )
    separator = Separator(bundle, args.method, SOURCES, views=False)
    saved = {key: data[key] for path in args.counts for data in [np.load(path)] for key in data}
    tables = {
        v: MarginalLikelihood.from_sparse(
            torch.from_numpy(saved[f"{v}_indices"]),
            torch.from_numpy(saved[f"{v}_counts"]),
            3,
            bundle.num_tokens,
            bundle.default_smoothing,
        )
        for v in VIEWS
        if f"{v}_indices" in saved
    }

    # every view the bundle holds, whichever method it is weighted for ("bundle:sub:0.35")
    held = {v.name: v for m in ("mlass-pe", "mlass-bp") for v in bundle.views(m, SOURCES)}

    def variant(spec: str):  # "low:1,high:0.5"; "shipped": the bundle's views for the method
        parts = spec.split(",") if spec else []
        shipped = bundle.views(args.method, SOURCES) if "shipped" in parts else ()
        pairs = [part.split(":") for part in parts if part != "shipped"]
        views = shipped + tuple(
            replace(held[p[1]], weight=float(p[2]))
            if p[0] == "bundle"
            else MixtureView(p[0], VIEWS[p[0]], tables[p[0]], float(p[1]))
            for p in pairs
        )

        def separate(mixture: np.ndarray, seed: int) -> np.ndarray:
            separator.views = views
            return separator.separate(mixture, settings, seed=seed).stems

        return separate

    compare(
        {spec or "no views": variant(spec) for spec in [args.reference, *args.variants]},
        args,
        bundle.sample_rate,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("count", help="count each view's table over train crops")
    crop_arguments(c, crops=1200)
    c.add_argument("--views", nargs="+", default=list(VIEWS), choices=list(VIEWS))
    r = commands.add_parser("run", help="separate chunks with and without the views")
    run_arguments(r)
    r.add_argument("--method", default="mlass-pe", choices=["mlass-pe", "mlass-bp"])
    r.add_argument("--search", default=None)
    r.add_argument("--counts", action="append", default=[], help="an npz of `count`; repeatable")
    r.add_argument("--reference", default="", help="the variant the others are paired with")
    r.add_argument("variants", nargs="+", help="views and weights, e.g. low:1 low:1,high:0.5")
    args = parser.parse_args()
    count(args) if args.command == "count" else run(args)


if __name__ == "__main__":
    main()
