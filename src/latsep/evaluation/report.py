"""results.md: one table row per (method, N) plus the ceiling and baseline rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from latsep.evaluation.aggregate import ALL
from latsep.evaluation.cases import METHOD
from latsep.evaluation.config import SOURCE_SETS
from latsep.evaluation.scoring import PICKS

ORACLE_LABEL = "oracle (best of N with references)"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _cell(scores: dict[str, Any], metric: str, kind: str, stat: str) -> str:
    if kind == METHOD:
        return " / ".join(_number(scores[f"{metric}_{pick}"][stat]) for pick in PICKS)
    return _number(scores[metric][stat])


def markdown_table(rows: Sequence[dict[str, Any]], stat: str = "mean") -> str:
    """rows: results.json's "rows" (case description + "aggregate"); stat: mean | median."""
    stems = list(SOURCE_SETS[max(SOURCE_SETS)])
    header = ["row", "N", "bundle", "chunks"]
    header += [f"SDR {s}" for s in stems] + ["SI-SDR (mean of sources)", "s / chunk", "RTF"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        agg = row["aggregate"]
        scores = agg["scores"]
        cells = [
            row["label"],
            str(len(row["sources"])),
            row["bundle"] or "–",
            str(agg["chunks"]),
        ]
        for stem in stems:
            cells.append(_cell(scores[stem], "sdr", row["kind"], stat) if stem in scores else "")
        cells.append(_cell(scores[ALL], "si_sdr", row["kind"], stat))
        if row["kind"] == METHOD:
            cells += [_number(agg["seconds_per_chunk"]["median"]), _number(agg["rtf"])]
        else:
            cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(results: dict[str, Any]) -> str:
    config, machine = results["config"], results["machine"]
    rows = results["rows"]
    picks = f"chosen + Wiener / ensemble Wiener / chosen raw / {ORACLE_LABEL}"
    parts = [
        "# Separation benchmark",
        "",
        f"{config['chunks']} chunks of {config['seconds']:g} s per source set from the corpus "
        f"`{config['split']}` split (held-out pieces and soundfont), mixture = plain sum of "
        "the stems. SDR: BSSEval v4 (museval), median over 1-s frames, dB; SI-SDR in dB.",
        "",
        f"Method cells read *{picks}*. The chosen candidate is picked without references "
        "(mixture consistency); the ensemble takes its Wiener masks from the squared mean "
        "magnitude of all candidates (no references either; the service's "
        "`consistency=ensemble`); the "
        "oracle peeks at the references and is an upper bound of the sampler, not a result. "
        "Ceiling: each true stem through the codec. Baseline: every stem = mixture / N.",
        "",
        f"Speed: wall-clock seconds of the separation call per {config['seconds']:g}-s chunk "
        "(median over chunks); RTF = seconds / chunk length (below 1 is faster than real "
        f"time). Device {machine['device']}, torch threads {machine['torch_threads']}, "
        f"{machine['cpu']}, torch {machine['torch']}.",
        "",
        "## Mean over chunks",
        "",
        markdown_table(rows, "mean"),
        "",
        "## Median over chunks",
        "",
        markdown_table(rows, "median"),
        "",
        "## Settings",
        "",
        "Command-line options, else the bundle's `separation_defaults`, else "
        "`latsep.evaluation.config.METHOD_DEFAULTS`.",
        "",
        "| row | N | search | candidates | temperature | top-k | likelihood weight |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        s = row["settings"]
        if s:
            cells = [
                row["label"],
                len(row["sources"]),
                s["search"],
                s["num_candidates"],
                f"{s['temperature']:g}",
                s["top_k"] or "none",
                f"{s['likelihood_weight']:g}",
            ]
            parts.append("| " + " | ".join(str(c) for c in cells) + " |")
    if results["skipped"]:
        parts += ["", "## Not run", ""]
        parts += [
            f"- {s['method']} with {s['num_sources']} sources: {s['reason']}"
            for s in results["skipped"]
        ]
    bundles = ", ".join(f"{b['name']} ({b['manifest_sha256'][:12]})" for b in results["bundles"])
    parts += ["", f"Bundles: {bundles}. Full figures in results.json.", ""]
    return "\n".join(parts)
