"""What the live workers serve, and the validation of a request against it.

Built from the workers' registrations in Redis (see `JobStore.live_workers`), so `/methods`
and `POST /separate` never promise what no running worker can do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from latsep.jobs import BundleInfo, SeparationOptions, WorkerInfo, first_serving
from latsep.methods import DEFAULT_METHOD, METHOD_TABLE, METHODS, SEARCHES, option_problem
from latsep.service.errors import bad_parameter, unavailable
from latsep.service.schemas import MethodPublic


@dataclass
class _MethodEntry:
    name: str
    bundles: list[BundleInfo] = field(default_factory=list)
    workers: set[str] = field(default_factory=set)


class Catalog:
    def __init__(self, workers: Sequence[WorkerInfo]) -> None:
        self.workers = list(workers)
        self.entries: dict[str, _MethodEntry] = {}
        for worker in self.workers:
            for bundle in worker.bundles:
                for method in bundle.methods:
                    entry = self.entries.setdefault(method, _MethodEntry(method))
                    entry.workers.add(worker.name)
                    if all(b.name != bundle.name for b in entry.bundles):
                        entry.bundles.append(bundle)

    def methods(self, default_num_candidates: int) -> list[MethodPublic]:
        out = []
        for name in sorted(self.entries, key=_method_order):
            entry = self.entries[name]
            sources: list[str] = []
            for b in entry.bundles:
                sources += [s for s in b.sources if s not in sources]
            out.append(
                MethodPublic(
                    name=name,
                    about=METHOD_TABLE[name].about,
                    recommended=name == DEFAULT_METHOD,
                    sources=sources,
                    max_sources=max(b.max_sources.get(name, 2) for b in entry.bundles),
                    searches=[s for s in SEARCHES if option_problem(name, search=s) is None],
                    sample_rate=entry.bundles[0].sample_rate,
                    bundles=[b.name for b in entry.bundles],
                    workers=len(entry.workers),
                    defaults=self.defaults(name, None, default_num_candidates),
                    defaults_by_sources={
                        str(n): _resolved(self._count_defaults(entry, n), default_num_candidates)
                        for n in _source_counts(entry)
                    },
                )
            )
        return out

    def separation_defaults(self, method: str, sources: Sequence[str] | None) -> dict[str, Any]:
        """The tuned defaults of the bundle that will serve this request ({} if none): the
        first one serving `sources`, as a worker routes it. sources None: those of a request
        that names none (the method's smallest source count when such a request must)."""
        entry = self.entries.get(method)
        if entry is None:
            return {}
        if sources is None:
            sources = entry.bundles[0].default_sources(method)
            if sources is None:
                counts = [len(s) for s in entry.bundles[0].source_sets.get(method, [])]
                return self._count_defaults(entry, min(counts, default=2))
        index = first_serving(entry.bundles, method, sources)
        return {} if index is None else entry.bundles[index].defaults_for(method, len(sources))

    def _count_defaults(self, entry: _MethodEntry, num_sources: int) -> dict[str, Any]:
        """The defaults of the first bundle serving `entry`'s method with that many sources."""
        for bundle in entry.bundles:
            if any(len(s) == num_sources for s in bundle.source_sets.get(entry.name, [])):
                return bundle.defaults_for(entry.name, num_sources)
        return {}

    def defaults(
        self, method: str, sources: Sequence[str] | None, default_num_candidates: int
    ) -> dict[str, Any]:
        """What a request that names no option runs with (seed and consistency aside)."""
        return _resolved(self.separation_defaults(method, sources), default_num_candidates)

    def resolve(self, method: str, sources: Sequence[str] | None) -> list[str]:
        """The sources to separate, or an ApiError saying why the request cannot be served."""
        if not self.workers:
            raise unavailable("no worker is running; try again later")
        problem = option_problem(method)  # an unknown method
        if problem is not None:
            raise bad_parameter(problem)
        entry = self.entries.get(method)
        if entry is None:
            served = ", ".join(sorted(self.entries, key=_method_order)) or "none"
            raise bad_parameter(
                f"method {method!r} is not served by the running workers (they serve: {served})"
            )
        if sources is None:
            first = entry.bundles[0]
            default = first.default_sources(method)
            if default is not None:
                return default
            sets = first.source_sets.get(method, [])
            raise bad_parameter(
                f"choose `sources` for {method} among: " + "; ".join(",".join(x) for x in sets)
            )
        if len(set(sources)) != len(sources):
            raise bad_parameter("`sources` lists a source twice")
        if len(sources) < 2:
            raise bad_parameter("`sources` needs at least two sources")
        if first_serving(entry.bundles, method, sources) is not None:
            return list(sources)
        offered = sorted(
            {",".join(x) for b in entry.bundles for x in b.source_sets.get(method, [])}
        )
        raise bad_parameter(
            f"no running worker separates {len(sources)} sources ({', '.join(sources)}) with "
            f"{method}; it is served for: {'; '.join(offered)}"
        )


def _source_counts(entry: _MethodEntry) -> list[int]:
    return sorted({len(s) for b in entry.bundles for s in b.source_sets.get(entry.name, [])})


def _resolved(bundle_defaults: dict[str, Any], default_num_candidates: int) -> dict[str, Any]:
    """Every tunable option a request leaving them all out runs with."""
    resolved = SeparationOptions(seed=0).resolve(bundle_defaults, default_num_candidates)
    return resolved.model_dump(exclude={"seed", "consistency"})


def _method_order(name: str) -> int:
    return METHODS.index(name) if name in METHODS else len(METHODS)
