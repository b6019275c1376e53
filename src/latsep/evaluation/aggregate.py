"""Mean and median over chunks of every per-chunk figure (nulls — silent references — are
left out and the count says how many chunks a figure rests on)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

ALL = "all"  # per chunk the mean over sources, then over chunks


def summary(values: Sequence[float | None]) -> dict[str, float | int | None]:
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": None, "median": None, "count": 0}
    return {
        "mean": float(np.mean(finite)),
        "median": float(np.median(finite)),
        "count": len(finite),
    }


def aggregate(
    records: Sequence[dict[str, Any]], sources: Sequence[str], chunk_seconds: float
) -> dict[str, Any]:
    """records: one row's per-chunk records, each {"scores": {source: {metric: value}}} and,
    for method rows, "seconds" of separation.

    Returns {"chunks", "scores": {source | "all": {metric: summary}}, and for method rows
    "seconds_per_chunk" (summary) and "rtf" (median seconds / chunk length)}.
    """
    metrics = sorted({m for r in records for s in sources for m in r["scores"][s]})
    scores: dict[str, dict[str, Any]] = {}
    for source in sources:
        scores[source] = {
            m: summary([r["scores"][source].get(m) for r in records]) for m in metrics
        }
    scores[ALL] = {m: summary([_source_mean(r, sources, m) for r in records]) for m in metrics}
    out: dict[str, Any] = {"chunks": len(records), "scores": scores}
    if records and all("seconds" in r for r in records):
        seconds = summary([r["seconds"] for r in records])
        out["seconds_per_chunk"] = seconds
        median = seconds["median"]
        out["rtf"] = None if median is None else float(median) / chunk_seconds
    return out


def _source_mean(record: dict[str, Any], sources: Sequence[str], metric: str) -> float | None:
    values = [record["scores"][s].get(metric) for s in sources]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None
