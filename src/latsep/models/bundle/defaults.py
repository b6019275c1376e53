"""Per-method separation defaults a bundle carries (tuned after benchmarking it).

manifest.json may hold

    "separation_defaults": {"lass": {"num_candidates": 8, "likelihood_weight": 2.0}, ...}

with any subset of DEFAULT_FIELDS per method. A request that leaves an option out gets
the bundle's value for its method, else the global default (see latsep.jobs.options).
Pure Python, so the checks run wherever a manifest is read or written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_FIELDS = ("num_candidates", "temperature", "top_k", "likelihood_weight", "search")
SEARCHES = ("sample", "beam")
BEAM_METHODS = ("lass", "lqvae", "hybrid")  # two sources; the only ones with beam search


def check_method_defaults(method: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults of one method, checked; ValueError names the first bad field."""
    if not isinstance(values, Mapping):
        raise ValueError(f"separation_defaults[{method!r}] is not an object")
    unknown = sorted(set(values) - set(DEFAULT_FIELDS))
    if unknown:
        raise ValueError(
            f"separation_defaults[{method!r}] has unknown fields {unknown}; known: "
            f"{', '.join(DEFAULT_FIELDS)}"
        )
    out: dict[str, Any] = {}
    for name, value in values.items():
        where = f"separation_defaults[{method!r}].{name}"
        if name in ("num_candidates", "top_k"):
            if name == "top_k" and value is None:  # explicitly no top-k
                out[name] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{where} must be an integer >= 1; got {value!r}")
            out[name] = value
        elif name in ("temperature", "likelihood_weight"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where} must be a number; got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{where} must be a finite number > 0; got {value!r}")
            out[name] = float(value)
        else:  # search
            if value not in SEARCHES:
                raise ValueError(f"{where} must be one of {', '.join(SEARCHES)}; got {value!r}")
            out[name] = value
    if out.get("search") == "beam":
        if method not in BEAM_METHODS:
            raise ValueError(f"search=beam serves {', '.join(BEAM_METHODS)}; not {method}")
        if out.get("temperature", 1.0) != 1.0:
            raise ValueError("search=beam ranks untempered scores: temperature must be 1")
    return out


def check_separation_defaults(
    defaults: Any, methods: Iterable[str], *, has_chain: bool = False
) -> dict[str, dict[str, Any]]:
    """The whole `separation_defaults` object, checked against the methods a bundle serves.

    `has_chain`: the bundle serves mlass-bp for three or more sources, where the engine
    samples the chain exactly only with likelihood_weight 1, so no other default is allowed.
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
        weight = out[method].get("likelihood_weight", 1.0)
        if method == "mlass-bp" and has_chain and weight != 1.0:
            raise ValueError(
                "separation_defaults['mlass-bp'].likelihood_weight must be 1: this bundle serves "
                "mlass-bp for 3 or more sources, which the engine samples exactly only with w = 1"
            )
    return out
