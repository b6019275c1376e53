"""`latsep bundle show | set-defaults | set-likelihood | fit-latent-sigma | add-views |
fit-mask-gains BUNDLE_DIR`: inspect a bundle, record tuned defaults and likelihood settings,
count band views of the mixture into it, fit a method's gains by band on its masks' power.

set-defaults writes per-method separation defaults into the bundle's manifest (merged
into what is there; --unset drops fields). Requests that leave an option out get them:

    latsep bundle set-defaults artifacts/default/plain --method lass \\
        --num-candidates 8 --likelihood-weight 2

--sources N records them for N sources only (an override of the method's defaults):

    latsep bundle set-defaults artifacts/default/plain --method mlass-bp --sources 2 \\
        --likelihood-weight 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from latsep.methods import LATENT_METHODS, METHODS, SEARCHES

# The fields of latsep.bundle.defaults.DEFAULT_FIELDS (not imported: it pulls in torch).
FIELDS = ("num_candidates", "temperature", "top_k", "likelihood_weight", "search")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="inspect a bundle or record its tuned separation defaults",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    show = actions.add_parser("show", help="print a bundle's summary and defaults as JSON")
    show.add_argument("bundle_dir", type=Path)
    show.set_defaults(handler=run_show)

    tune = actions.add_parser(
        "set-defaults", help="record separation defaults for one method in the manifest"
    )
    tune.add_argument("bundle_dir", type=Path)
    tune.add_argument("--method", required=True, choices=METHODS)
    tune.add_argument(
        "--sources",
        type=int,
        default=None,
        metavar="N",
        help="only for N sources (default: every source count without its own override)",
    )
    tune.add_argument("--num-candidates", type=int, default=None)
    tune.add_argument("--temperature", type=float, default=None)
    tune.add_argument("--top-k", type=int, default=None)
    tune.add_argument(
        "--no-top-k", action="store_true", help="record 'no top-k' (overrides a top-k)"
    )
    tune.add_argument("--likelihood-weight", type=float, default=None)
    tune.add_argument("--search", choices=SEARCHES, default=None)
    tune.add_argument(
        "--unset",
        action="append",
        default=[],
        choices=FIELDS,
        help="drop this field from the method's defaults (repeatable)",
    )
    tune.set_defaults(handler=run_set_defaults)

    likelihood = actions.add_parser(
        "set-likelihood",
        help="record the count tables' backoff strength, a method's latent σ or a band view's "
        "weight in the manifest",
    )
    likelihood.add_argument("bundle_dir", type=Path)
    likelihood.add_argument(
        "--backoff", type=float, default=None, metavar="BETA", help="β > 0, or 0 for off"
    )
    likelihood.add_argument(
        "--latent-sigma",
        nargs=2,
        action="append",
        default=None,
        metavar=("METHOD", "SIGMA"),
        help="lqvae or hybrid also scores the mixture's continuous latent with this σ (0: its "
        "token only again); repeatable",
    )
    likelihood.add_argument(
        "--view-weight",
        nargs=2,
        action="append",
        default=None,
        metavar=("VIEW", "WEIGHT"),
        help="the exponent λ > 0 of a band view's factors (`add-views`), or per method: "
        "mlass-pe=0.35,mlass-bp=0.5; repeatable",
    )
    likelihood.set_defaults(handler=run_set_likelihood)

    fit = actions.add_parser(
        "fit-latent-sigma",
        help="fit lqvae's σ on the continuous latent over random train crops of a corpus",
    )
    fit.add_argument("bundle_dir", type=Path)
    fit.add_argument("--corpus", type=Path, required=True)
    fit.add_argument("--crops", type=int, default=128, help="2-s train crops (128)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument(
        "--method",
        choices=LATENT_METHODS,
        default=LATENT_METHODS[0],
        help="record it for this method (the ML fit; a method that multiplies it with a count "
        "table usually wants a wider σ, tuned on valid)",
    )
    fit.add_argument("--record", action="store_true", help="write it into the manifest")
    fit.set_defaults(handler=run_fit_latent_sigma)

    views = actions.add_parser(
        "add-views",
        help="count band views of the mixture (p(v | z_i) over train crops, with the "
        "bundle's codec) for a set of three or more sources and add them to the bundle",
    )
    views.add_argument("bundle_dir", type=Path)
    views.add_argument("--corpus", type=Path, required=True)
    views.add_argument(
        "--view",
        nargs=4,
        action="append",
        required=True,
        metavar=("NAME", "FILTER", "CUTOFF_HZ", "WEIGHT"),
        help="e.g. low lowpass 200 1, or mid bandpass 200,3000 mlass-pe=0.35,mlass-bp=0.5 "
        "(λ per method; a method not named does not use the view); FILTER may name the "
        "mix's harmonic or percussive part first, and 'full' keeps every frequency (CUTOFF_HZ "
        "-): perc percussive:full - 0.5, harmlow harmonic:lowpass 200 0.5; repeatable",
    )
    views.add_argument(
        "--sources", help="comma-separated, three or more (default: all the bundle's sources)"
    )
    views.add_argument("--crops", type=int, default=1200, help="2-s train crops (1200)")
    views.add_argument("--seed", type=int, default=0)
    views.set_defaults(handler=run_add_views)

    gains = actions.add_parser(
        "fit-mask-gains",
        help="fit a method's gains by frequency band on each source's power before the masks, "
        "on chunks of the valid split separated with the bundle's defaults, and record them",
    )
    gains.add_argument("bundle_dir", type=Path)
    gains.add_argument("--corpus", type=Path, required=True)
    gains.add_argument("--method", required=True, choices=METHODS)
    gains.add_argument(
        "--sources", help="comma-separated (default: all the bundle's sources, in its order)"
    )
    gains.add_argument("--chunks", type=int, default=64, help="3-s chunks (64)")
    gains.add_argument(
        "--split",
        choices=("valid", "train"),
        default="valid",
        help="valid (default): songs the models never saw, whose candidates err as uploads' "
        "do; the models fit their train split, so gains fitted there do not carry over",
    )
    gains.add_argument("--seed", type=int, default=0)
    gains.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    gains.set_defaults(handler=run_fit_mask_gains)


def run_show(args: argparse.Namespace) -> int:
    from latsep.bundle import BundleError
    from latsep.bundle.manifest import validate_manifest

    path = args.bundle_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        validate_manifest(manifest, args.bundle_dir, sample_rate=None)
    except (OSError, ValueError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = {f: (args.bundle_dir / f).stat().st_size for f in manifest["files"]}
    summary = {
        "name": manifest.get("name"),
        "format_version": manifest["format_version"],
        "codec_kind": manifest["codec"]["kind"],
        "num_tokens": manifest["num_tokens"],
        "hop_length": manifest["hop_length"],
        "sources": manifest["sources"],
        "methods": manifest["methods"],
        "tables": {name: entry.get("nnz") for name, entry in manifest["tables"].items()},
        "weights": manifest.get("weights", {"dtype": "float32"}),
        "separation_defaults": manifest.get("separation_defaults", {}),
        "likelihood": manifest.get("likelihood", {}),
        "mask_gains": sorted(manifest.get("mask_gains", {})),
        "bytes": {"total": sum(files.values()), **files},
    }
    print(json.dumps(summary, indent=2))
    return 0


def run_set_defaults(args: argparse.Namespace) -> int:
    from latsep.bundle import BundleError, set_separation_defaults

    values = {f: getattr(args, f) for f in FIELDS if getattr(args, f) is not None}
    if args.no_top_k:
        if "top_k" in values:
            print("error: --top-k and --no-top-k contradict each other", file=sys.stderr)
            return 2
        values["top_k"] = None
    if not values and not args.unset:
        print("error: nothing to set; give at least one option or --unset", file=sys.stderr)
        return 2
    try:
        defaults = set_separation_defaults(
            args.bundle_dir, args.method, values, unset=args.unset, num_sources=args.sources
        )
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"bundle": str(args.bundle_dir), "method": args.method, **defaults}))
    return 0


def run_set_likelihood(args: argparse.Namespace) -> int:
    from latsep.bundle import BundleError, set_likelihood

    try:
        sigmas = None
        if args.latent_sigma:
            sigmas = {method: float(sigma) for method, sigma in args.latent_sigma}
        weights = None
        if args.view_weight:
            weights = {view: _view_weight(weight) for view, weight in args.view_weight}
        likelihood = set_likelihood(
            args.bundle_dir, backoff=args.backoff, latent_sigma=sigmas, view_weight=weights
        )
    except (BundleError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"bundle": str(args.bundle_dir), "likelihood": likelihood}))
    return 0


def run_fit_latent_sigma(args: argparse.Namespace) -> int:
    from latsep.bundle import BundleError, load_bundle, set_likelihood
    from latsep.training.count_building import fit_latent_sigma
    from latsep.training.data import StemStore

    try:
        bundle = load_bundle(args.bundle_dir, device="cpu")
        if args.method not in bundle.methods:
            raise ValueError(f"bundle {args.bundle_dir} does not serve {args.method}")
        sources = bundle.source_sets(args.method)[0]
        store = StemStore(args.corpus, "train", tuple(sources))
        sigma = fit_latent_sigma(bundle.codec, store, crops=args.crops, seed=args.seed)
        out: dict[str, object] = {"bundle": str(args.bundle_dir), "latent_sigma": sigma}
        if args.record:
            out["likelihood"] = set_likelihood(args.bundle_dir, latent_sigma={args.method: sigma})
    except (BundleError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


def run_add_views(args: argparse.Namespace) -> int:
    from latsep.bundle import BundleError, add_views, load_bundle
    from latsep.training.data import StemStore
    from latsep.training.view_counts import count_views

    try:
        bundle = load_bundle(args.bundle_dir, device="cpu")
        chosen = set(args.sources.split(",")) if args.sources else set(bundle.sources)
        if len(chosen) < 3 or not chosen <= set(bundle.sources):
            raise ValueError(f"views are for three or more of the bundle's {bundle.sources}")
        sources = tuple(s for s in bundle.sources if s in chosen)  # the bundle's order
        entries, bands = {}, {}
        for name, kind, cutoffs, weight in args.view:
            band = _view_filter(kind, cutoffs)
            bands[name] = band
            entries[name] = {**band.to_manifest(), "weight": _view_weight(weight)}
        store = StemStore(args.corpus, "train", sources)
        tables = count_views(bundle.codec, store, bands, crops=args.crops, seed=args.seed)
        recorded = add_views(args.bundle_dir, tables, entries)
    except (BundleError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"bundle": str(args.bundle_dir), "views": recorded}))
    return 0


def _view_filter(kind: str, cutoffs: str):
    """ "lowpass", "200" → a low band of the whole mix; "percussive:full", "-" → the mix's
    percussive part, every frequency."""
    from latsep.models.separation.views import ViewFilter

    part, _, band = kind.rpartition(":")
    edges = () if cutoffs.strip() in ("", "-") else tuple(float(c) for c in cutoffs.split(","))
    return ViewFilter(band, edges, part=part or None)


def _view_weight(text: str) -> float | dict[str, float]:
    """ "0.5" → 0.5; "mlass-pe=0.35,mlass-bp=0.5" → {method: λ}."""
    if "=" not in text:
        return float(text)
    return {m: float(w) for m, w in (part.split("=", 1) for part in text.split(","))}


def run_fit_mask_gains(args: argparse.Namespace) -> int:
    import torch

    from latsep.bundle import BundleError, load_bundle, set_mask_gains
    from latsep.bundle.manifest import gains_name
    from latsep.evaluation.mask_gains import fit_mask_gains, fitted_on

    torch.set_num_threads(args.threads)
    try:
        bundle = load_bundle(args.bundle_dir, device="cpu")
        names = args.sources.split(",") if args.sources else bundle.sources
        sources = bundle.canonical_order(args.method, names)
        fitted = fit_mask_gains(
            bundle,
            args.method,
            sources,
            args.corpus,
            chunks=args.chunks,
            split=args.split,
            seed=args.seed,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
        entry = fitted.to_manifest(
            sources,
            split=args.split,
            chunks=args.chunks,
            seed=args.seed,
            fitted_on=fitted_on(),  # the power they weigh: refit when these change
        )
        set_mask_gains(args.bundle_dir, gains_name(args.method, sources), entry)
    except (BundleError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"bundle": str(args.bundle_dir), "mask_gains": {args.method: entry}}))
    return 0
