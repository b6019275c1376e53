"""Paired comparisons of `latsep bench` results: what a lever is worth, with its noise level.

Every figure is a mean over the same chunks of a per-chunk difference, with its standard
error (sd / √n): two runs on the same chunks differ chunk by chunk far less than their
means' spreads suggest, so a paired difference is the honest measure of a lever.

    # margin of every method over the trivial baseline (mixture / N), per source
    .venv/bin/python bench/compare.py margins docs/bench/results.json
    # a lever on/off: run B minus run A, method by method (same chunks, same seeds)
    .venv/bin/python bench/compare.py diff /tmp/off/results.json /tmp/on/results.json
    # several sets side by side: SDR, margin over mixture/N (mean, median), oracle
    .venv/bin/python bench/compare.py summary test=docs/bench/results.json \
        "GMbank −12 dB=docs/bench/heldout-12dB/results.json" \
        "GMbank +6 dB=docs/bench/heldout6dB/results.json"

`--pick` chooses the output compared (ensemble: the service's default; wiener, none, oracle).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any


def load_rows(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))["rows"]


def per_chunk(row: dict[str, Any], source: str, metric: str) -> dict[str, float]:
    """chunk id → value of `metric` (e.g. sdr_ensemble, or sdr for a reference row)."""
    return {c["chunk"]: c["scores"][source][metric] for c in row["chunks"]}


def paired(a: dict[str, float], b: dict[str, float]) -> tuple[float, float, float, int]:
    """(mean of b − a, its standard error, median of b − a, n) over the chunks both have."""
    common = sorted(set(a) & set(b))
    diffs = [b[c] - a[c] for c in common]
    if not diffs:
        return math.nan, math.nan, math.nan, 0
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    return statistics.fmean(diffs), se, statistics.median(diffs), len(diffs)


def _cell(mean: float, se: float, median: float) -> str:
    return f"{mean:+.2f} ± {se:.2f} (median {median:+.2f})"


def margins(rows: list[dict[str, Any]], pick: str) -> list[str]:
    """Each method row minus the baseline row of its source count, per source."""
    baselines = {len(r["sources"]): r for r in rows if r["kind"] == "baseline"}
    lines = [
        f"| method | N | source | {pick} − mixture/N, mean ± s.e. (median) | chunks |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        base = baselines.get(len(row["sources"]))
        if row["kind"] != "method" or base is None:
            continue
        for source in row["sources"]:
            mean, se, median, n = paired(
                per_chunk(base, source, "sdr"), per_chunk(row, source, f"sdr_{pick}")
            )
            lines.append(
                f"| {row['label']} | {len(row['sources'])} | {source} | "
                f"{_cell(mean, se, median)} | {n} |"
            )
    return lines


def summary(named: list[tuple[str, list[dict[str, Any]]]], pick: str) -> list[str]:
    """One row per (method, N, source): per results set, the pick's mean SDR, its margin over
    mixture/N (mean, median) and the oracle's mean SDR — the issue's acceptance table."""
    header = "| method | N | source | " + " | ".join(
        f"{name}: SDR / margin mean (median) / oracle" for name, _ in named
    )
    lines = [header + " |", "|---|---|---|" + "---|" * len(named)]
    first = named[0][1]
    for row in first:
        if row["kind"] != "method":
            continue
        key = (row["label"], len(row["sources"]))
        for source in row["sources"]:
            cells = []
            for _, rows in named:
                match = next(
                    (r for r in rows if r["kind"] == "method"
                     and (r["label"], len(r["sources"])) == key),
                    None,
                )  # fmt: skip
                base = next(
                    (r for r in rows if r["kind"] == "baseline" and len(r["sources"]) == key[1]),
                    None,
                )
                if match is None or base is None:
                    cells.append("–")
                    continue
                values = per_chunk(match, source, f"sdr_{pick}")
                mean, _se, median, _n = paired(per_chunk(base, source, "sdr"), values)
                oracle = statistics.fmean(per_chunk(match, source, "sdr_oracle").values())
                cells.append(
                    f"{statistics.fmean(values.values()):.2f} / {mean:+.2f} ({median:+.2f}) / "
                    f"{oracle:.2f}"
                )
            lines.append(f"| {key[0]} | {key[1]} | {source} | " + " | ".join(cells) + " |")
    return lines


def diff(before: list[dict[str, Any]], after: list[dict[str, Any]], pick: str) -> list[str]:
    """Run `after` minus run `before`, matching method rows by (label, N)."""
    by_key = {(r["label"], len(r["sources"])): r for r in before if r["kind"] == "method"}
    lines = [
        f"| method | N | source | before | after | after − before ({pick}), mean ± s.e. "
        "(median) | chunks |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in after:
        key = (row["label"], len(row["sources"]))
        if row["kind"] != "method" or key not in by_key:
            continue
        for source in row["sources"]:
            a = per_chunk(by_key[key], source, f"sdr_{pick}")
            b = per_chunk(row, source, f"sdr_{pick}")
            mean, se, median, n = paired(a, b)
            lines.append(
                f"| {key[0]} | {key[1]} | {source} | {statistics.fmean(a.values()):.2f} | "
                f"{statistics.fmean(b.values()):.2f} | {_cell(mean, se, median)} | {n} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("margins", "diff", "summary"))
    parser.add_argument(
        "results",
        nargs="+",
        help="results.json (two for diff; any for summary, each optionally as LABEL=PATH)",
    )
    parser.add_argument("--pick", default="ensemble", choices=("ensemble", "wiener", "none",
                                                                "oracle"))  # fmt: skip
    args = parser.parse_args(argv)
    named = [
        (label, Path(path)) if path else (Path(label).parent.name, Path(label))
        for label, _, path in (r.partition("=") for r in args.results)
    ]
    if args.command == "margins" and len(named) == 1:
        lines = margins(load_rows(named[0][1]), args.pick)
    elif args.command == "diff" and len(named) == 2:
        lines = diff(load_rows(named[0][1]), load_rows(named[1][1]), args.pick)
    elif args.command == "summary":
        lines = summary([(label, load_rows(path)) for label, path in named], args.pick)
    else:
        print("margins takes one results.json, diff two", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
