"""`latsep separate`: separate a local file without HTTP or Redis (or, with `--remote URL`,
through a latsep service with `latsep.client`); stems land in a folder."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from latsep.methods import DEFAULT_METHOD, METHODS, SEARCHES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "separate",
        help="separate a local audio file into DIR/<source>.wav",
        description="Run one separation in this process (the worker's pipeline) and print a "
        "JSON summary. The models run mono at 22,050 Hz; the stems keep the upload's sample "
        "rate and channels and, with --consistency wiener or ensemble, sum to it (exactly "
        "with float WAV, the default; integer formats round and clip at full scale).",
    )
    parser.add_argument(
        "file",
        type=Path,
        nargs="+",
        help="the mixture (a plain sum of the sources); several files: OUT/<file name>/",
    )
    parser.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        help=f"{', '.join(METHODS)} (default {DEFAULT_METHOD}, the best by the benchmark); "
        "`latsep methods` lists what the bundles serve",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--sources",
        default=None,
        help="comma-separated, e.g. bass,drums; default: those --reference names, else the "
        "bundle's (bass,drums for two-source methods)",
    )
    parser.add_argument(
        "--bundle", action="append", type=Path, default=None, help="bundle dir (repeatable)"
    )
    # Left out, these take the bundle's tuned default for the method (`latsep bundle show`).
    parser.add_argument("--num-candidates", type=int, default=None)
    parser.add_argument("--search", choices=SEARCHES, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--likelihood-weight", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--format", choices=("wav", "flac"), default="wav", help="stem files (default wav)"
    )
    parser.add_argument(
        "--bit-depth",
        choices=("16", "24", "float"),
        default=None,
        help="default: float for wav, 24 for flac (FLAC holds integers only)",
    )
    parser.add_argument("--consistency", choices=("wiener", "ensemble", "none"), default="ensemble")
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="SOURCE=PATH",
        help="true stem of SOURCE, to print SDR/SI-SDR (repeat for every source)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar on stderr (the JSON stays)"
    )
    parser.add_argument("--device", default=None, help="auto, cpu, cuda (default LATSEP_DEVICE)")
    parser.add_argument(
        "--remote",
        default=None,
        metavar="URL",
        help="separate on the latsep service at URL (e.g. http://127.0.0.1:8000) instead of "
        "in this process; --bundle and --device are the service's business then",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="API key for --remote (default: the LATSEP_API_KEY environment variable)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from latsep.audio import output_subtype

    try:
        subtype = output_subtype(args.format, args.bit_depth)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.remote:
        from latsep.cli._remote import separate_remote

        if len(args.file) > 1:
            print("error: --remote takes one file at a time", file=sys.stderr)
            return 2
        args.file = args.file[0]
        return separate_remote(args)
    from latsep.audio import AudioError, write_audio
    from latsep.bundle import BundleError
    from latsep.jobs import SeparationOptions
    from latsep.settings import expand_bundle_paths, get_settings
    from latsep.worker import pipeline
    from latsep.worker.routing import Engine, UnservableRequest

    settings = get_settings()
    paths = expand_bundle_paths(args.bundle) if args.bundle else settings.bundle_paths()
    if not paths:
        print("no bundle: pass --bundle or set LATSEP_BUNDLES", file=sys.stderr)
        return 2
    references = parse_references(args.reference)
    if references is None:
        return 2
    try:
        options = SeparationOptions(
            num_candidates=args.num_candidates,
            search=args.search,
            temperature=args.temperature,
            top_k=args.top_k,
            likelihood_weight=args.likelihood_weight,
            seed=args.seed,
            consistency=args.consistency,
        )
    except ValueError as exc:
        print(f"bad option: {exc}", file=sys.stderr)
        return 2
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    device = args.device or settings.device
    problem = device_problem(device)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if references and len(args.file) > 1:
        print("error: --reference goes with one file", file=sys.stderr)
        return 2
    try:
        engine = Engine.load(paths, device=device)
    except (BundleError, OSError) as exc:
        print(f"error: cannot load bundles: {exc}", file=sys.stderr)
        return 2
    if args.sources:
        sources: list[str] | None = [s.strip() for s in args.sources.split(",")]
    else:
        sources = list(references) or None  # the references name the sources
    summaries = []
    for file in args.file:
        out = args.out / file.stem if len(args.file) > 1 else args.out
        try:
            with progress_bar(file.name, args.quiet) as progress:
                outcome = pipeline.run(
                    engine,
                    args.method,
                    sources,
                    file,
                    options,
                    references=references,
                    progress=progress,
                )
        except (AudioError, UnservableRequest, ValueError) as exc:
            print(
                f"error: {file}: {exc}" if len(args.file) > 1 else f"error: {exc}", file=sys.stderr
            )
            return 1
        out.mkdir(parents=True, exist_ok=True)
        files = {}
        for source, audio in outcome.stems.items():
            path = out / f"{source}.{args.format}"
            rate = outcome.result.sample_rate
            write_audio(path, audio, rate, format=args.format, subtype=subtype)
            files[source] = str(path)
        summary = {"method": args.method, "file": str(file), "files": files}
        summary.update(outcome.result.model_dump(mode="json"))
        summaries.append(summary)
    print(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    return 0


def parse_references(items: list[str]) -> dict[str, Path] | None:
    """--reference SOURCE=PATH items as {source: path}; None (said on stderr) if one is not."""
    references = {}
    for item in items:
        source, sep, path = item.partition("=")
        if not sep:
            print(f"--reference wants SOURCE=PATH, got {item!r}", file=sys.stderr)
            return None
        references[source] = Path(path)
    return references


@contextmanager
def progress_bar(name: str, quiet: bool) -> Iterator[Callable[[float, str], None]]:
    """A tqdm bar on stderr over the pipeline's progress (0..1, in 0.1 %), its stage
    ("separating 120/5168 tokens", ...) as the postfix; nothing with `quiet`."""
    from tqdm import tqdm

    bar = tqdm(
        total=1000,
        desc=name,
        file=sys.stderr,
        disable=quiet,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}",
        dynamic_ncols=True,
    )

    shown = [""]

    def update(fraction: float, stage: str) -> None:
        if quiet:
            return
        done = round(1000 * min(max(fraction, 0.0), 1.0))
        if stage != shown[0]:
            shown[0] = stage
            bar.set_postfix_str(stage, refresh=False)
        if done > bar.n:
            bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


def device_problem(device: str) -> str | None:
    """A one-line reason `device` cannot be used here, or None."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return f"--device {device}: torch sees no CUDA device on this machine; use cpu or auto"
    return None
