"""The bundle manifest: format constants, what each codec kind serves, and validation.

A bundle is data, not code: manifest.json plus safetensors (weights) and npz (count
tables) files, each listed with its sha256 so a truncated, swapped or tampered file is
refused at load time.

Format versions: 1 stored tables as int64 COO safetensors and weights in fp32; 2 stores
tables as compressed npz of the smallest integer types that hold them and weights in fp16
(the quantizer in fp32). Both are read; save writes version 2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latsep.bundle.defaults import check_separation_defaults
from latsep.methods import METHOD_TABLE, METHODS_BY_CODEC
from latsep.models.separation.band_gains import BandGains

FORMAT = "latsep-bundle"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
CODEC_FILE = "codec.safetensors"
DEFAULT_SMOOTHING = 0.01  # additive pseudo-count when the caller gives none

PAIR_TABLE = "lass"  # the joint table of a pair: LASS's, read by every table method
TABLE_KINDS = (PAIR_TABLE, "chain", "marginal")
# "view-<name>:a+b+c": p(v | z_i) of band view <name> (likelihood.views), marginal-shaped
VIEW_PREFIX = "view-"


class BundleError(Exception):
    """A bundle that is missing, corrupt, or does not match what the caller needs."""


def prior_file(source: str) -> str:
    return f"prior-{source}.safetensors"


def table_file(name: str, version: int = FORMAT_VERSION) -> str:
    kind, sources = split_table_name(name)
    suffix = "safetensors" if version == 1 else "npz"
    return f"tables/{kind}-{'+'.join(sources)}.{suffix}"


def split_table_name(name: str) -> tuple[str, tuple[str, ...]]:
    """ "lass:bass+drums" → ("lass", ("bass", "drums"))."""
    kind, sep, rest = name.partition(":")
    sources = tuple(rest.split("+")) if rest else ()
    known = kind in TABLE_KINDS or view_name(kind) is not None
    if not sep or not known or len(sources) < 2 or "" in sources:
        raise BundleError(f"malformed table name {name!r}")
    return kind, sources


def gains_name(method: str, sources: Sequence[str]) -> str:
    """The manifest key of a method's mask gains for a set of sources: "mlass-bp:a+b+c"."""
    return f"{method}:{'+'.join(sources)}"


def split_gains_name(name: str) -> tuple[str, tuple[str, ...]]:
    method, sep, rest = name.partition(":")
    sources = tuple(rest.split("+")) if rest else ()
    if not sep or method not in METHOD_TABLE or len(sources) < 2 or "" in sources:
        raise BundleError(f"malformed mask gains name {name!r}")
    return method, sources


def gains_set(name: str) -> tuple[str, frozenset[str]]:
    """What a mask gains entry is for, whatever the order of its sources: (method, set)."""
    method, sources = split_gains_name(name)
    return method, frozenset(sources)


def view_name(kind: str) -> str | None:
    """The view a table kind holds ("view-low" → "low"), None for any other kind."""
    name = kind.removeprefix(VIEW_PREFIX)
    if name == kind or not name or not all(c.isalnum() or c == "_" for c in name):
        return None
    return name


def table_shape(kind: str, num_sources: int, num_tokens: int) -> tuple[int, int, int]:
    """A table's dense shape: [source, z, y] for marginal and view tables, else K³."""
    marginal = kind == "marginal" or view_name(kind) is not None
    return (num_sources if marginal else num_tokens, num_tokens, num_tokens)


def served_methods(kind: str, table_names: list[str]) -> tuple[str, ...]:
    """The methods a bundle of codec `kind` with these tables can serve."""
    has_pair = any(split_table_name(n)[0] == PAIR_TABLE for n in table_names)
    return tuple(m for m in METHODS_BY_CODEC[kind] if METHOD_TABLE[m].tableless or has_pair)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def validate_manifest(manifest: Any, root: Path, *, sample_rate: int | None) -> None:
    """Structural checks and file hashes; raises BundleError with the first problem found."""
    where = f"bundle {root}"
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: manifest.json is not a JSON object")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{where}: not a latsep bundle (format {manifest.get('format')!r})")
    version = manifest.get("format_version")
    if version not in READABLE_VERSIONS:
        raise BundleError(
            f"{where}: format_version {version!r} is not supported (this latsep reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}); retrain or convert the bundle"
        )
    for key in ("sample_rate", "hop_length", "num_tokens", "sources", "codec", "priors",
                "tables", "methods", "files"):  # fmt: skip
        if key not in manifest:
            raise BundleError(f"{where}: manifest has no {key!r}")
    if sample_rate is not None and manifest["sample_rate"] != sample_rate:
        raise BundleError(
            f"{where}: sample rate {manifest['sample_rate']} Hz, expected {sample_rate} Hz"
        )
    kind = manifest["codec"].get("kind")
    if kind not in METHODS_BY_CODEC:
        raise BundleError(f"{where}: unknown codec kind {kind!r}")
    sources = manifest["sources"]
    if not isinstance(sources, list) or len(sources) < 2 or len(set(sources)) != len(sources):
        raise BundleError(f"{where}: sources must be a list of at least two distinct names")
    if set(manifest["priors"]) != set(sources):
        raise BundleError(f"{where}: priors {sorted(manifest['priors'])} != sources {sources}")
    for name in manifest["tables"]:
        _, table_sources = split_table_name(name)
        if not set(table_sources) <= set(sources):
            raise BundleError(f"{where}: table {name!r} names a source the bundle lacks")
    check_view_tables(manifest, where)
    check_mask_gains(manifest, where)
    expected = served_methods(kind, list(manifest["tables"]))
    unknown = set(manifest["methods"]) - set(expected)
    if unknown:
        raise BundleError(
            f"{where}: claims methods {sorted(unknown)} that a {kind!r} codec with tables "
            f"{sorted(manifest['tables'])} cannot serve"
        )
    try:
        check_separation_defaults(
            manifest.get("separation_defaults", {}),
            manifest["methods"],
            has_chain=any(split_table_name(n)[0] == "chain" for n in manifest["tables"]),
        )
    except ValueError as exc:
        raise BundleError(f"{where}: {exc}") from exc
    needed = listed_files(manifest)
    files = manifest["files"]
    missing_entries = needed - set(files)
    if missing_entries:
        raise BundleError(f"{where}: manifest lists no hash for {sorted(missing_entries)}")
    for relative, digest in files.items():
        path = root / relative
        if ".." in Path(relative).parts or Path(relative).is_absolute():
            raise BundleError(f"{where}: file path {relative!r} leaves the bundle")
        if not path.is_file():
            raise BundleError(f"{where}: missing file {relative}")
        if sha256_of(path) != digest:
            raise BundleError(f"{where}: {relative} does not match its sha256 (corrupt or edited)")


def listed_files(manifest: dict[str, Any]) -> set[str]:
    """The files a manifest's codec, priors and tables name (what its hashes must cover)."""
    names = {CODEC_FILE, *(prior_file(s) for s in manifest["sources"])}
    return names | {table_file(t, manifest["format_version"]) for t in manifest["tables"]}


def check_mask_gains(manifest: dict[str, Any], where: str) -> None:
    """Every entry of mask_gains names a served method and the bundle's sources, with a
    row of finite gains per source for its bands (`band_gains.BandGains`)."""
    entries = manifest.get("mask_gains", {})
    if not isinstance(entries, dict):
        raise BundleError(f"{where}: mask_gains must be an object")
    fitted: set[tuple[str, frozenset[str]]] = set()
    for name, entry in entries.items():
        method, sources = split_gains_name(name)
        if method not in manifest["methods"] or not set(sources) <= set(manifest["sources"]):
            raise BundleError(f"{where}: mask gains {name!r} are for what the bundle lacks")
        if gains_set(name) in fitted:  # two orders of one set
            raise BundleError(f"{where}: mask gains for {method} on {sorted(sources)} twice")
        fitted.add(gains_set(name))
        try:
            BandGains.from_manifest(entry, sources)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: mask gains {name!r}: {exc}") from exc


def check_view_tables(manifest: dict[str, Any], where: str) -> None:
    """Every view table has its view in likelihood.views, and every view a table; a view's
    table covers three or more sources (pairs have none), one table per view and set of
    sources (two orders of one set would apply the view twice)."""
    likelihood = manifest.get("likelihood", {})
    views = likelihood.get("views", {}) if isinstance(likelihood, dict) else None
    if not isinstance(views, dict):
        raise BundleError(f"{where}: likelihood.views must be an object")
    tabled = set()
    covered: set[tuple[str, frozenset[str]]] = set()
    for name in manifest["tables"]:
        kind, sources = split_table_name(name)
        view = view_name(kind)
        if view is None:
            continue
        if view not in views:
            raise BundleError(f"{where}: table {name!r} is of a view likelihood.views lacks")
        if len(sources) < 3:
            raise BundleError(f"{where}: view table {name!r} needs three or more sources")
        if (view, frozenset(sources)) in covered:
            raise BundleError(f"{where}: view {view!r} has two tables for {sorted(sources)}")
        covered.add((view, frozenset(sources)))
        tabled.add(view)
    if set(views) - tabled:
        raise BundleError(f"{where}: views {sorted(set(views) - tabled)} have no table")
