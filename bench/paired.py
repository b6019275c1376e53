"""The paired table the study scripts print: per-chunk margins of several variants on the
same chunks and seeds, each against a reference variant, mean ± standard error."""

from __future__ import annotations

import math

import numpy as np


def print_paired(rows: dict[str, list[np.ndarray]], reference: str, what: str) -> None:
    """rows: variant → one (N,) margin per chunk; prints each variant's mean margin and its
    paired difference from `reference`."""
    first = np.array(rows[reference])
    print(f"{len(first)} chunks; {what}; paired with {reference}")
    for name, values in rows.items():
        margin = np.array(values)
        diff = margin - first
        se = diff.std(0, ddof=1) / math.sqrt(len(diff))
        cells = " ".join(f"{m:+.2f}" for m in margin.mean(0))
        diffs = " ".join(f"{d:+.2f} ± {s:.2f}" for d, s in zip(diff.mean(0), se, strict=True))
        print(f"{name:20s} {cells}   | {diffs}")
