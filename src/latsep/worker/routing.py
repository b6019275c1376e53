"""The bundles a worker loaded, and which one serves a (method, sources) request.

Shipped bundles split the methods by codec (plain codec: lass, mlass-bp, mlass-pe; LQ codec:
lqvae, hybrid), so a worker usually loads several and routes each method to the first bundle
that serves it with every requested source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from latsep.jobs import BundleInfo, first_serving


class ServedBundle(Protocol):
    """What the worker (and a `Separator`) use of a bundle: `latsep.bundle.Bundle`, or a
    test's stand-in, which mypy checks against this (tests/worker/worker_support.py)."""

    @property
    def sources(self) -> tuple[str, ...]: ...

    @property
    def methods(self) -> tuple[str, ...]: ...

    @property
    def sample_rate(self) -> int: ...

    @property
    def stem_level_dbfs(self) -> float | None: ...

    @property
    def codec(self) -> Any: ...

    def prior(self, source: str) -> Any: ...

    def likelihood(
        self,
        method: str,
        sources: Sequence[str],
        smoothing: float | None = None,
        backoff: float | None = None,
        latent_sigma: float | None = None,
    ) -> Any: ...

    def source_sets(self, method: str) -> tuple[tuple[str, ...], ...]: ...

    def mask_gains(self, method: str, sources: Sequence[str]) -> Any: ...

    def max_sources(self, method: str) -> int: ...

    def canonical_order(self, method: str, sources: Sequence[str]) -> tuple[str, ...]: ...

    def separation_defaults(
        self, method: str, num_sources: int | None = None
    ) -> dict[str, Any]: ...


class UnservableRequest(ValueError):
    """No loaded bundle serves this method with these sources."""


@dataclass(frozen=True)
class LoadedBundle:
    name: str
    path: Path
    bundle: ServedBundle  # a latsep.bundle.Bundle (typed by protocol: no models import here)

    def source_sets(self, method: str) -> list[tuple[str, ...]]:
        if method not in self.bundle.methods:
            return []
        return [tuple(s) for s in self.bundle.source_sets(method)]

    def separation_defaults(self, method: str, num_sources: int) -> dict[str, Any]:
        """The bundle's tuned option defaults for `method` with `num_sources` sources; {} for
        a bundle without any."""
        if method not in self.bundle.methods:
            return {}
        recorded = getattr(self.bundle, "separation_defaults", None)  # a duck-typed bundle
        return dict(recorded(method, num_sources)) if recorded is not None else {}

    def published_defaults(self, method: str) -> dict[str, dict[str, Any]]:
        """{str(N): defaults} for every source count the bundle serves `method` with and has
        defaults for (what the API reads from the worker's registration)."""
        counts = sorted({len(s) for s in self.source_sets(method)})
        return {str(n): d for n in counts if (d := self.separation_defaults(method, n))}

    def order(self, method: str, sources: Sequence[str]) -> tuple[str, ...]:
        """The stored order of this source set (the likelihood tables' order)."""
        return tuple(self.bundle.canonical_order(method, tuple(sources)))

    def info(self) -> BundleInfo:
        methods = list(self.bundle.methods)
        return BundleInfo(
            name=self.name,
            sources=list(self.bundle.sources),
            methods=methods,
            max_sources={m: int(self.bundle.max_sources(m)) for m in methods},
            source_sets={m: [list(s) for s in self.source_sets(m)] for m in methods},
            sample_rate=int(self.bundle.sample_rate),
            separation_defaults={m: d for m in methods if (d := self.published_defaults(m))},
        )


class Engine:
    """Loaded bundles, in priority order."""

    def __init__(self, bundles: Sequence[LoadedBundle], device: str) -> None:
        if not bundles:
            raise ValueError("a worker needs at least one bundle")
        self.bundles = tuple(bundles)
        self.device = device
        # What each bundle serves, read once: loaded bundles do not change, and every job's
        # routing and every heartbeat's registration read it.
        self._infos = tuple(b.info() for b in self.bundles)

    @classmethod
    def load(cls, paths: Sequence[Path], device: str = "auto") -> Engine:
        """Load each bundle once (weights onto `device`)."""
        from latsep.bundle import load_bundle

        loaded = []
        for path in paths:
            bundle = load_bundle(path, device=device)
            name = str(getattr(bundle, "name", "") or Path(path).name)
            loaded.append(LoadedBundle(name=name, path=Path(path), bundle=bundle))
        resolved = str(getattr(loaded[0].bundle, "device", device)) if loaded else device
        return cls(loaded, resolved)

    def methods(self) -> list[str]:
        seen: dict[str, None] = {}
        for b in self.bundles:
            seen.update(dict.fromkeys(b.bundle.methods))
        return list(seen)

    def capabilities(self) -> list[BundleInfo]:
        return list(self._infos)

    def default_sources(self, method: str) -> list[str]:
        """The one source set the first bundle serving `method` offers, or all its sources."""
        for b, info in zip(self.bundles, self._infos, strict=True):
            sets = b.source_sets(method)
            if not sets:
                continue
            default = info.default_sources(method)  # the API's rule, from the same record
            if default is not None:
                return default
            choices = "; ".join(",".join(s) for s in sets)
            raise UnservableRequest(f"choose `sources` for {method} among: {choices}")
        raise UnservableRequest(f"no loaded bundle serves method {method!r}")

    def route(self, method: str, sources: Sequence[str]) -> LoadedBundle:
        """The first bundle serving `method` for exactly this set of sources."""
        index = first_serving(self._infos, method, sources)
        if index is not None:
            return self.bundles[index]
        offered = [f"{b.name}: {','.join(s)}" for b in self.bundles for s in b.source_sets(method)]
        if not offered:
            raise UnservableRequest(f"no loaded bundle serves method {method!r}")
        raise UnservableRequest(
            f"cannot separate {', '.join(sources)} with {method}; the loaded bundles serve "
            + "; ".join(offered)
        )
