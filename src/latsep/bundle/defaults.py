"""Per-method separation defaults a bundle carries (tuned after benchmarking it).

manifest.json may hold

    "separation_defaults": {
        "lass": {"num_candidates": 8, "likelihood_weight": 2.0},
        "mlass-bp": {"likelihood_weight": 1.0, "by_sources": {"2": {"likelihood_weight": 2.0}}},
    }

with any subset of DEFAULT_FIELDS per method, and optionally, under `by_sources`, per source
count, the fields that differ for that count (a method's best settings depend on it: mlass-bp
samples exactly only at weight 1 for three or more sources, and is LASS for two). A request
that leaves an option out gets the bundle's value for its method and source count
(`defaults_for`), else the global default (see latsep.jobs.options). Pure Python, so the
checks run wherever a manifest is read or written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from latsep.methods import METHOD_TABLE, SEARCHES, option_problem

DEFAULT_FIELDS = ("num_candidates", "temperature", "top_k", "likelihood_weight", "search")
BY_SOURCES = "by_sources"


def defaults_for(method_defaults: Mapping[str, Any], num_sources: int) -> dict[str, Any]:
    """A method's defaults for `num_sources` sources: its fields, overridden by those under
    `by_sources[str(num_sources)]`."""
    common = {k: v for k, v in method_defaults.items() if k != BY_SOURCES}
    return {**common, **method_defaults.get(BY_SOURCES, {}).get(str(num_sources), {})}


def check_method_defaults(method: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults of one method, checked; ValueError names the first bad field."""
    where = f"separation_defaults[{method!r}]"
    out = _check_fields(values, where, allow_by_sources=True)
    overrides = out.pop(BY_SOURCES, {})
    if not isinstance(overrides, Mapping):
        raise ValueError(f"{where}.{BY_SOURCES} is not an object")
    by_sources: dict[str, dict[str, Any]] = {}
    for count, fields in overrides.items():
        # Canonical decimal only: "03" next to "3" would be checked but never read.
        canonical = isinstance(count, str) and count.isascii() and count.isdigit()
        if not (canonical and count == str(int(count)) and int(count) >= 2):
            raise ValueError(f"{where}.{BY_SOURCES} keys are source counts >= 2; got {count!r}")
        problem = option_problem(method, int(count))
        if problem is not None:
            raise ValueError(f"{where}.{BY_SOURCES}: {problem}")
        checked = _check_fields(fields, f"{where}.{BY_SOURCES}[{count!r}]")
        _check_beam(method, {**out, **checked})
        by_sources[count] = checked
    _check_beam(method, out)
    if by_sources:
        out[BY_SOURCES] = by_sources
    return out


def _check_fields(values: Any, where: str, *, allow_by_sources: bool = False) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise ValueError(f"{where} is not an object")
    known = (*DEFAULT_FIELDS, BY_SOURCES) if allow_by_sources else DEFAULT_FIELDS
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where} has unknown fields {unknown}; known: {', '.join(known)}")
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name == BY_SOURCES:
            out[name] = value  # checked by the caller, field by field
            continue
        field_name = f"{where}.{name}"
        if name in ("num_candidates", "top_k"):
            if name == "top_k" and value is None:  # explicitly no top-k
                out[name] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field_name} must be an integer >= 1; got {value!r}")
            out[name] = value
        elif name in ("temperature", "likelihood_weight"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{field_name} must be a number; got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{field_name} must be a finite number > 0; got {value!r}")
            out[name] = float(value)
        else:  # search
            if value not in SEARCHES:
                raise ValueError(
                    f"{field_name} must be one of {', '.join(SEARCHES)}; got {value!r}"
                )
            out[name] = value
    return out


def _check_beam(method: str, values: Mapping[str, Any]) -> None:
    problem = option_problem(
        method, search=values.get("search"), temperature=values.get("temperature")
    )
    if problem is not None:
        raise ValueError(problem)


def check_separation_defaults(
    defaults: Any, methods: Iterable[str], *, has_chain: bool = False
) -> dict[str, dict[str, Any]]:
    """The whole `separation_defaults` object, checked against the methods a bundle serves.

    `has_chain`: the bundle serves mlass-bp for three or more sources, where the engine
    samples the chain exactly only with likelihood_weight 1: mlass-bp's own weight (which
    applies to every source count without an override) and its overrides for three or more
    sources must be 1; only `by_sources["2"]` may set another.
    """
    if not isinstance(defaults, Mapping):
        raise ValueError("separation_defaults is not an object")
    served = list(methods)
    out = {}
    for method, values in defaults.items():
        if method not in served:
            raise ValueError(
                f"separation_defaults names {method!r}, which the bundle does not serve "
                f"({', '.join(served)})"
            )
        out[method] = check_method_defaults(method, values)
        if METHOD_TABLE[method].chain and has_chain:
            _check_chain_weight(method, out[method])
    return out


def _check_chain_weight(method: str, defaults: Mapping[str, Any]) -> None:
    entries = {f"separation_defaults[{method!r}]": defaults}
    for count, fields in defaults.get(BY_SOURCES, {}).items():
        if int(count) >= 3:
            entries[f"separation_defaults[{method!r}].{BY_SOURCES}[{count!r}]"] = fields
    for where, fields in entries.items():
        if option_problem(method, 3, likelihood_weight=fields.get("likelihood_weight")):
            raise ValueError(
                f"{where}.likelihood_weight must be 1: this bundle serves {method} for 3 or "
                "more sources, which the engine samples exactly only with w = 1 (set another "
                f"weight for two sources under {BY_SOURCES}['2'])"
            )
