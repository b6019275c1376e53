"""`latsep separate --remote URL`: the same command, run by a latsep service through
`latsep.client`. Progress goes to stderr, the JSON summary to stdout, stems to --out."""

from __future__ import annotations

import argparse
import json
import os
import sys

import httpx

from latsep.cli.separate import parse_references
from latsep.client import ApiError, Client, Job, JobFailed


def separate_remote(args: argparse.Namespace) -> int:
    if args.bundle or args.device:
        print("--bundle and --device do not go with --remote: it has its own", file=sys.stderr)
        return 2
    if not args.file.is_file():
        print(f"error: no file {args.file}", file=sys.stderr)
        return 2
    references = parse_references(args.reference)
    if references is None:
        return 2
    api_key = args.api_key or os.environ.get("LATSEP_API_KEY") or None
    with Client(args.remote, api_key) as client:
        try:
            result = client.separate(
                args.file,
                method=args.method,
                sources=args.sources,
                references=references,
                num_candidates=args.num_candidates,
                search=args.search,
                temperature=args.temperature,
                top_k=args.top_k,
                likelihood_weight=args.likelihood_weight,
                seed=args.seed,
                consistency=args.consistency,
            )
            print(f"job {result.job_id} submitted to {args.remote}", file=sys.stderr)
            job = result.wait(on_progress=_report)
            print(file=sys.stderr)
            files = result.download(args.out, args.format, args.bit_depth)
        except (ApiError, JobFailed) as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            return 1
        except httpx.HTTPError as exc:
            print(f"\nerror: cannot reach {args.remote}: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            return 1
    summary = {"method": args.method, "files": {s: str(p) for s, p in files.items()}}
    summary.update(job.raw)
    print(json.dumps(summary, indent=2))
    return 0


def _report(job: Job) -> None:
    print(f"\r{job.status:9} {job.progress:4.0%}  {job.stage[:60]:60}", end="", file=sys.stderr)
