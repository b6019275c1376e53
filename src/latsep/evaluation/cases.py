"""The rows of the benchmark: each served (method, N sources) plus the reference rows.

The reference rows do not depend on the method: the codec ceiling (every true stem through
a bundle's codec) once per (bundle codec, source set), the trivial baseline (every stem =
mixture / N) once per source set.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from latsep.bundle import Bundle, BundleError
from latsep.evaluation.config import SOURCE_SETS, Overrides, SearchSettings, method_settings
from latsep.evaluation.scoring import PICKS
from latsep.methods import METHODS, TWO_SOURCE_METHODS, option_problem

METHOD, CEILING, BASELINE = "method", "ceiling", "baseline"


@dataclass(frozen=True)
class Case:
    """One table row. `sources` is the order the models take them in (the bundle's stored
    order); `key` identifies everything that changes its numbers, for the resume cache."""

    kind: str  # METHOD | CEILING | BASELINE
    sources: tuple[str, ...]
    key: str
    method: str | None = None
    bundle: str | None = None
    settings: SearchSettings | None = None

    @property
    def num_sources(self) -> int:
        return len(self.sources)

    @property
    def label(self) -> str:
        if self.kind == METHOD:
            return str(self.method)
        if self.kind == CEILING:
            return f"ceiling: codec {self.bundle}"
        return "baseline: mixture / N"

    def describe(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "label": self.label,
            "method": self.method,
            "sources": list(self.sources),
            "bundle": self.bundle,
            "settings": asdict(self.settings) if self.settings else None,
        }


@dataclass(frozen=True)
class Skipped:
    method: str
    num_sources: int
    reason: str


def case_key(identity: Mapping[str, Any]) -> str:
    """A short stable hash of what a row's numbers depend on."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def served_methods(bundles: Sequence[Bundle]) -> dict[str, Bundle]:
    """method -> the first bundle (in the given order) that serves it, in METHODS."""
    by_method: dict[str, Bundle] = {}
    for method in METHODS:
        for bundle in bundles:
            if method in bundle.methods:
                by_method[method] = bundle
                break
    return by_method


def plan_cases(
    bundles: Sequence[Bundle],
    *,
    methods: Sequence[str] | None,
    source_counts: Sequence[int],
    overrides: Overrides,
    identity: Mapping[str, Any],
    bundle_ids: Mapping[str, str],
    mask_gains: bool = True,
) -> tuple[list[Case], list[Skipped]]:
    """Method rows then, per source set that has one, the ceiling and baseline rows.

    identity: what every row depends on (corpus, chunk length, seed); bundle_ids: bundle
    name -> manifest hash, so a retrained bundle does not reuse cached results; a method row
    whose bundle has gains by band for it (`Bundle.mask_gains`; unless mask_gains is False:
    the rows then equal those of a bundle without them) has them in its key too.
    """
    by_method = served_methods(bundles)
    wanted = list(methods) if methods else list(by_method)
    cases: list[Case] = []
    skipped: list[Skipped] = []
    for n in source_counts:
        if n not in SOURCE_SETS:
            raise ValueError(f"no source set for {n} sources; have {sorted(SOURCE_SETS)}")
        stems = SOURCE_SETS[n]
        used: dict[str, Bundle] = {}
        for method in wanted:
            problem = option_problem(method)  # an unknown method
            if problem is not None:
                raise ValueError(problem)
            if method in TWO_SOURCE_METHODS and n != 2:
                continue  # not a gap: these methods are defined for two sources
            bundle = by_method.get(method)
            if bundle is None:
                skipped.append(Skipped(method, n, "no bundle serves it"))
                continue
            try:
                order = bundle.canonical_order(method, stems)
            except BundleError as exc:
                skipped.append(Skipped(method, n, str(exc)))
                continue
            settings = method_settings(method, n, overrides, bundle.separation_defaults(method, n))
            row = {
                **identity,
                "kind": METHOD,
                "method": method,
                "sources": order,
                "bundle": bundle_ids[bundle.name],
                "settings": asdict(settings),
                "picks": list(PICKS),  # a record scored with fewer picks is stale
            }
            gains = bundle.mask_gains(method, order) if mask_gains else None
            if gains is not None:  # the row's own gains (bundle ids leave every row's out)
                row["mask_gains"] = gains.to_manifest(order)
            key = case_key(row)
            cases.append(Case(METHOD, order, key, method, bundle.name, settings))
            used.setdefault(bundle.name, bundle)
        for name in used:
            key = case_key(
                {**identity, "kind": CEILING, "sources": stems, "bundle": bundle_ids[name]}
            )
            cases.append(Case(CEILING, stems, key, bundle=name))
        if used:
            key = case_key({**identity, "kind": BASELINE, "sources": stems})
            cases.append(Case(BASELINE, stems, key))
    return cases, skipped
