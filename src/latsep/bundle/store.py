"""Write a bundle directory atomically, and load + validate one."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latsep.bundle.bundle import Bundle
from latsep.bundle.defaults import BY_SOURCES, check_separation_defaults
from latsep.bundle.manifest import (
    CODEC_FILE,
    DEFAULT_SMOOTHING,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    VIEW_PREFIX,
    BundleError,
    check_view_tables,
    gains_set,
    listed_files,
    prior_file,
    served_methods,
    sha256_of,
    split_table_name,
    table_file,
    table_shape,
    validate_manifest,
    view_name,
)
from latsep.bundle.tables import COO, load_table, save_table
from latsep.bundle.weights import FP32_PREFIXES, WEIGHT_DTYPES, load_module, save_module
from latsep.methods import METHOD_TABLE, check_latent_sigmas
from latsep.models.codec import SAMPLE_RATE, Codec, CodecConfig
from latsep.models.prior.transformer import PriorConfig, TransformerPrior
from latsep.models.separation.views import ViewFilter

MAX_VIEW_WEIGHT = 4.0  # λ of a band view: p^λ of a rare code must stay above float64 range


def save_bundle(
    path: str | Path,
    *,
    codec: Codec,
    codec_kind: str,
    priors: Mapping[str, TransformerPrior],
    tables: Mapping[str, list[COO]],
    gaussian_sigma: float | None = None,
    name: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    quality: Mapping[str, Any] | None = None,
    separation_defaults: Mapping[str, Mapping[str, Any]] | None = None,
    backoff: float = 0.0,
    latent_sigma: Mapping[str, float] | None = None,
    views: Mapping[str, Mapping[str, Any]] | None = None,
    weights_dtype: str = "float16",
    overwrite: bool = False,
) -> Path:
    """Write a bundle directory; returns its path. Sources are the priors' keys, in order.

    `separation_defaults`: per method, any of num_candidates, temperature, top_k,
    likelihood_weight, search (see latsep.bundle.defaults). `weights_dtype`:
    "float16" (half the bytes; the quantizer stays fp32) or "float32" (bit-exact).
    `backoff`: the count tables' backoff strength β (0: additive smoothing only).
    `latent_sigma`: {method: σ} of the methods that also score the mixture's continuous latent.
    `views`: {name: {"filter", "cutoff_hz", "order", ["part",] "weight"}} of the views whose
    "view-<name>:..." tables `tables` holds (models/separation/views.py).
    """
    path = Path(path)
    check_backoff(backoff)
    if weights_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights_dtype is one of {sorted(WEIGHT_DTYPES)}; got {weights_dtype!r}")
    methods = list(served_methods(codec_kind, list(tables)))
    has_chain = any(split_table_name(n)[0] == "chain" for n in tables)
    defaults = check_separation_defaults(separation_defaults or {}, methods, has_chain=has_chain)
    sigmas = {m: float(s) for m, s in (latent_sigma or {}).items()}
    check_latent_sigmas(sigmas, methods)
    view_entries = check_views(views or {})
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    sources = list(priors)
    k = codec.num_tokens
    if codec_kind == "lq" and gaussian_sigma is None:
        raise ValueError("an lq bundle needs gaussian_sigma for the lqvae method")
    for source, prior in priors.items():
        if prior.num_tokens != k:
            raise ValueError(f"prior {source!r} has K={prior.num_tokens}, codec K={k}")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        save_module(staging / CODEC_FILE, codec, weights_dtype)
        for source, prior in priors.items():
            save_module(staging / prior_file(source), prior, weights_dtype)
        table_entries = {}
        for table_name, levels in tables.items():
            kind, table_sources = split_table_name(table_name)
            save_table(staging / table_file(table_name), levels)
            table_entries[table_name] = {
                "file": table_file(table_name),
                "levels": len(levels),
                "shape": list(table_shape(kind, len(table_sources), k)),
                "nnz": [int(c.shape[0]) for _, c in levels],
                "total": [int(c.sum()) for _, c in levels],
            }
        files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name or path.name,
            "sample_rate": codec.sample_rate,
            "hop_length": codec.hop_length,
            "num_tokens": k,
            "sources": sources,
            "codec": {"kind": codec_kind, "config": codec.config.to_dict(), "file": CODEC_FILE},
            "priors": {
                s: {"config": p.config.to_dict(), "file": prior_file(s)} for s, p in priors.items()
            },
            "tables": table_entries,
            "likelihood": {
                "gaussian_sigma": gaussian_sigma,
                "default_smoothing": DEFAULT_SMOOTHING,
                "backoff": float(backoff),
                **({"latent_sigma": sigmas} if sigmas else {}),
                **({"views": view_entries} if view_entries else {}),
            },
            "methods": methods,
            "weights": {"dtype": weights_dtype, "float32": list(FP32_PREFIXES)},
            "separation_defaults": defaults,
            "provenance": dict(provenance or {}),
            "quality": dict(quality or {}),
            "files": {f: sha256_of(staging / f) for f in files},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        _make_readable(staging)  # mkdtemp gives 0700; a service user must read the bundle
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def load_bundle(
    path: str | Path, device: str | torch.device = "auto", *, sample_rate: int = SAMPLE_RATE
) -> Bundle:
    """Load and validate a bundle; BundleError says what is wrong with a bad one."""
    root = Path(path)
    manifest = _read_manifest(root)
    validate_manifest(manifest, root, sample_rate=sample_rate)
    device = _resolve(device)
    try:
        codec_config = CodecConfig.from_dict(manifest["codec"]["config"])
    except (TypeError, ValueError) as exc:
        raise BundleError(f"bundle {root}: bad codec config ({exc})") from exc
    if codec_config.num_tokens != manifest["num_tokens"]:
        raise BundleError(
            f"bundle {root}: codec K={codec_config.num_tokens} but manifest K="
            f"{manifest['num_tokens']}"
        )
    if codec_config.hop_length != manifest["hop_length"]:
        raise BundleError(f"bundle {root}: codec hop differs from the manifest's hop_length")
    if codec_config.sample_rate != manifest["sample_rate"]:
        raise BundleError(f"bundle {root}: codec sample rate differs from the manifest's")
    codec = Codec(codec_config)
    load_module(root / CODEC_FILE, codec)
    codec = codec.to(device).eval()
    priors = {}
    for source in manifest["sources"]:
        entry = manifest["priors"][source]
        try:
            prior_config = PriorConfig.from_dict(entry["config"])
        except (TypeError, ValueError) as exc:
            raise BundleError(f"bundle {root}: bad prior config for {source!r} ({exc})") from exc
        if prior_config.num_tokens != codec_config.num_tokens:
            raise BundleError(
                f"bundle {root}: prior {source!r} has K={prior_config.num_tokens}, codec "
                f"K={codec_config.num_tokens}"
            )
        prior = TransformerPrior(prior_config)
        load_module(root / prior_file(source), prior)
        priors[source] = prior.to(device).eval()
    tables = {}
    for table_name, entry in manifest["tables"].items():
        kind, table_sources = split_table_name(table_name)
        levels = len(table_sources) - 1 if kind == "chain" else 1
        if entry.get("levels") != levels:
            raise BundleError(f"bundle {root}: table {table_name} should have {levels} levels")
        k = codec_config.num_tokens
        shape = table_shape(kind, len(table_sources), k)
        table_path = root / table_file(table_name, manifest["format_version"])
        declared = entry.get("nnz")
        if declared is not None and (
            not isinstance(declared, list) or not all(isinstance(n, int) for n in declared)
        ):
            raise BundleError(f"bundle {root}: table {table_name} has a malformed nnz")
        tables[table_name] = load_table(table_path, shape, levels, declared)
        nnz = [int(counts.shape[0]) for _, counts in tables[table_name]]
        if entry.get("nnz", nnz) != nnz:
            raise BundleError(
                f"bundle {root}: table {table_name} has {nnz} entries, manifest says "
                f"{entry.get('nnz')}"
            )
    try:
        check_backoff(manifest.get("likelihood", {}).get("backoff") or 0.0)
    except ValueError as exc:
        raise BundleError(f"bundle {root}: likelihood.{exc}") from exc
    tableless = [m for m in manifest["methods"] if METHOD_TABLE[m].tableless]
    if tableless:  # the codebook's Gaussian is their likelihood
        sigma = manifest.get("likelihood", {}).get("gaussian_sigma")
        if not isinstance(sigma, int | float) or not sigma > 0:
            raise BundleError(
                f"bundle {root}: {', '.join(tableless)} needs a positive likelihood.gaussian_sigma"
            )
    try:
        check_latent_sigmas(
            manifest.get("likelihood", {}).get("latent_sigma", {}), manifest["methods"]
        )
        check_views(manifest.get("likelihood", {}).get("views", {}), int(manifest["sample_rate"]))
    except ValueError as exc:
        raise BundleError(f"bundle {root}: likelihood.{exc}") from exc
    return Bundle(root, manifest, codec, priors, tables, device)


def set_separation_defaults(
    path: str | Path,
    method: str,
    values: Mapping[str, Any],
    *,
    unset: Sequence[str] = (),
    num_sources: int | None = None,
) -> dict[str, Any]:
    """Record tuned separation defaults of `method` in a bundle's manifest; returns the
    method's entry as stored.

    `values` are merged into the method's current defaults — into its `by_sources` override
    for `num_sources` sources when that is given — then the fields in `unset` are dropped
    there. The bundle is validated first (hashes included), so a corrupt bundle is never
    blessed; the manifest is replaced atomically. The weights and tables are untouched, so
    their hashes stay valid.
    """
    root = Path(path)
    manifest = _read_manifest(root)
    validate_manifest(manifest, root, sample_rate=None)
    defaults = dict(manifest.get("separation_defaults", {}))
    entry = dict(defaults.get(method, {}))
    if num_sources is None:
        target = entry
    else:
        overrides = dict(entry.get(BY_SOURCES, {}))
        target = overrides[str(num_sources)] = dict(overrides.get(str(num_sources), {}))
        entry[BY_SOURCES] = overrides
    target.update(values)
    for name in unset:
        target.pop(name, None)
    if num_sources is not None and not target:
        entry[BY_SOURCES].pop(str(num_sources))
    if BY_SOURCES in entry and not entry[BY_SOURCES]:  # the last override went
        entry.pop(BY_SOURCES)
    defaults[method] = entry
    if not entry:
        defaults.pop(method)
    has_chain = any(split_table_name(n)[0] == "chain" for n in manifest["tables"])
    try:
        checked = check_separation_defaults(defaults, manifest["methods"], has_chain=has_chain)
    except ValueError as exc:
        raise BundleError(f"bundle {root}: {exc}") from exc
    manifest["separation_defaults"] = checked
    _write_manifest(root, manifest)
    return dict(checked.get(method, {}))


def check_backoff(value: Any) -> float:
    """β is a finite number >= 0 (0: off); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(f"backoff must be a finite number >= 0; got {value!r}")
    return float(value)


def check_latent_sigma(value: Any) -> float:
    """A method's σ on the continuous latent: a finite number >= 0 (0: its token only)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(f"latent_sigma must be a finite number >= 0; got {value!r}")
    return float(value)


def set_likelihood(
    path: str | Path,
    *,
    backoff: float | None = None,
    latent_sigma: Mapping[str, float] | None = None,
    view_weight: Mapping[str, float | Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Record a tuned backoff strength, σ of a method's latent term ({method: σ}; σ 0
    removes it: the method scores tokens only again) and/or band views' weights ({view: λ},
    λ one number or {method: λ}) in a bundle's manifest (validated first, replaced
    atomically; weights and tables untouched); returns the manifest's likelihood entry."""
    root = Path(path)
    manifest = _read_manifest(root)
    validate_manifest(manifest, root, sample_rate=None)
    likelihood = dict(manifest.get("likelihood", {}))
    if backoff is None and latent_sigma is None and view_weight is None:
        raise ValueError("nothing to set: give backoff, latent_sigma and/or view_weight")
    if backoff is not None:
        likelihood["backoff"] = check_backoff(backoff)
    if latent_sigma is not None:
        sigmas = dict(likelihood.get("latent_sigma", {}))
        for method, sigma in latent_sigma.items():
            sigmas.pop(method, None)
            if check_latent_sigma(sigma) > 0:
                sigmas[method] = float(sigma)
        check_latent_sigmas(sigmas, manifest["methods"])
        likelihood.pop("latent_sigma", None)
        if sigmas:
            likelihood["latent_sigma"] = sigmas
    if view_weight is not None:
        views = {name: dict(entry) for name, entry in likelihood.get("views", {}).items()}
        for name, weight in view_weight.items():
            if name not in views:
                raise ValueError(f"the bundle has no view {name!r}; it has {sorted(views)}")
            views[name]["weight"] = weight
        likelihood["views"] = check_views(views)
    manifest["likelihood"] = likelihood
    _write_manifest(root, manifest)
    return likelihood


def set_mask_gains(path: str | Path, name: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """Record a method's gains by band on the masks' power for a set of sources (`name`:
    "method:a+b+c", `entry`: `BandGains.to_manifest`) in a bundle's manifest, replacing any
    for that set (validated before and after, replaced atomically); returns mask_gains."""
    root = Path(path)
    manifest = _read_manifest(root)
    validate_manifest(manifest, root, sample_rate=None)
    gains = {
        key: value
        for key, value in manifest.get("mask_gains", {}).items()
        if gains_set(key) != gains_set(name)
    }
    gains[name] = dict(entry)
    manifest["mask_gains"] = gains
    validate_manifest(manifest, root, sample_rate=None)
    _write_manifest(root, manifest)
    return gains


def _write_manifest(root: Path, manifest: Mapping[str, Any]) -> None:
    staging = root / f".{MANIFEST}.tmp"
    staging.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    staging.chmod(0o644)
    os.replace(staging, root / MANIFEST)


def check_views(
    views: Mapping[str, Any], sample_rate: int | None = None
) -> dict[str, dict[str, Any]]:
    """Each view's name (letters, digits, _), filter (`ViewFilter`, its cutoffs below the
    Nyquist frequency of `sample_rate` when given) and weight: λ in (0, MAX_VIEW_WEIGHT] for
    every method, or {method: λ} (a method not named does not use the view), as stored."""
    checked = {}
    for name, entry in views.items():
        if not isinstance(name, str) or view_name(VIEW_PREFIX + name) != name:
            raise ValueError(f"view name {name!r} must be letters, digits and _")
        if not isinstance(entry, Mapping):
            raise ValueError(f"views.{name} must be an object")
        try:
            band = ViewFilter.from_manifest(entry)
        except ValueError as exc:
            raise ValueError(f"views.{name}: {exc}") from exc
        if sample_rate is not None and max(band.cutoff_hz, default=0) >= sample_rate / 2:
            raise ValueError(f"views.{name}: cutoff {max(band.cutoff_hz)} Hz is not below Nyquist")
        weight = entry.get("weight", 1.0)
        if isinstance(weight, Mapping):
            unknown = set(weight) - set(METHOD_TABLE)
            if unknown or not weight:
                raise ValueError(
                    f"views.{name}.weight names no method or unknown {sorted(unknown)}"
                )
            stored: Any = {m: _view_weight(name, w) for m, w in weight.items()}
        else:
            stored = _view_weight(name, weight)
        checked[name] = {**band.to_manifest(), "weight": stored}
    return checked


def _view_weight(name: str, weight: Any) -> float:
    # λ is bounded: p^λ of a rare code underflows to 0 for a large enough λ
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not 0 < weight <= MAX_VIEW_WEIGHT
    ):
        raise ValueError(f"views.{name}.weight must be in (0, {MAX_VIEW_WEIGHT}]; got {weight!r}")
    return float(weight)


def add_views(
    path: str | Path,
    tables: Mapping[str, list[COO]],
    views: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Add (or replace) band-view tables ("view-<name>:a+b+c", counted with this bundle's
    codec, the sources in the bundle's order) and their views' filters and weights to a
    bundle in place. Everything is checked and the tables written to staging files first;
    then the tables and, last, the manifest replace their files (a crash between those
    renames leaves tables the old manifest's hashes refuse: rerun it). Returns
    likelihood.views."""
    root = Path(path)
    manifest = _read_manifest(root)
    validate_manifest(manifest, root, sample_rate=None)
    if manifest["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"bundle {root} is format version {manifest['format_version']}; views are added "
            f"to version {FORMAT_VERSION} bundles (retrain it, or save it again)"
        )
    likelihood = dict(manifest.get("likelihood", {}))
    stored = likelihood.get("views", {})
    merged = check_views({**stored, **views}, int(manifest["sample_rate"]))
    entries = dict(manifest["tables"])
    for name in views:  # counts made with another filter are not this view's
        if name in stored and ViewFilter.from_manifest(stored[name]) != ViewFilter.from_manifest(
            merged[name]
        ):
            entries = {
                t: e for t, e in entries.items() if split_table_name(t)[0] != VIEW_PREFIX + name
            }
    k, sources = int(manifest["num_tokens"]), manifest["sources"]
    for table_name, levels in tables.items():
        kind, table_sources = split_table_name(table_name)
        if view_name(kind) not in merged:
            raise ValueError(f"{table_name!r} is not a table of the views given")
        if not set(table_sources) <= set(sources):
            raise ValueError(f"table {table_name!r} names a source the bundle lacks")
        if len(table_sources) < 3:
            raise ValueError(f"view table {table_name!r} needs three or more sources")
        if list(table_sources) != [s for s in sources if s in table_sources]:
            raise ValueError(f"table {table_name!r}: name its sources in the bundle's order")
        _check_view_levels(table_name, levels, len(table_sources), k)
        entries[table_name] = {
            "file": table_file(table_name),
            "levels": 1,
            "shape": list(table_shape(kind, len(table_sources), k)),
            "nnz": [int(np.asarray(c).shape[0]) for _, c in levels],
            "total": [int(np.asarray(c).sum()) for _, c in levels],
        }
    likelihood["views"] = merged
    updated = {**manifest, "tables": entries, "likelihood": likelihood}
    try:
        check_view_tables(updated, f"bundle {root}")
    except BundleError as exc:
        raise ValueError(str(exc)) from exc
    files = {f: d for f, d in manifest["files"].items() if f in listed_files(updated)}
    staged = []
    try:
        for table_name, levels in tables.items():
            staging = root / f".{Path(table_file(table_name)).name}.tmp"
            staged.append((staging, root / table_file(table_name)))
            save_table(staging, levels)
            staging.chmod(0o644)
            files[table_file(table_name)] = sha256_of(staging)
        updated["files"] = dict(sorted(files.items()))
        text = json.dumps(updated, indent=1) + "\n"
    except BaseException:
        for staging, _ in staged:
            staging.unlink(missing_ok=True)
        raise
    for staging, final in staged:
        os.replace(staging, final)
    staging = root / f".{MANIFEST}.tmp"
    staging.write_text(text, encoding="utf-8")
    staging.chmod(0o644)
    os.replace(staging, root / MANIFEST)
    return merged


def _check_view_levels(name: str, levels: list[COO], num_sources: int, k: int) -> None:
    """One level of (indices [i, z_i, v] (3, nnz), counts (nnz,)) within (N, K, K)."""
    if len(levels) != 1:
        raise ValueError(f"view table {name!r} has one level; got {len(levels)}")
    indices, counts = (np.asarray(a) for a in levels[0])
    if indices.ndim != 2 or indices.shape[0] != 3 or counts.shape != (indices.shape[1],):
        raise ValueError(f"view table {name!r} is not COO (3, nnz) + (nnz,)")
    limits = np.array([num_sources, k, k])[:, None]
    if indices.size and ((indices < 0).any() or (indices >= limits).any()):
        raise ValueError(f"view table {name!r} has indices outside ({num_sources}, {k}, {k})")


def _read_manifest(root: Path) -> Any:
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"bundle {root}: no {MANIFEST} (not a bundle directory?)")
    try:
        return json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle {root}: {MANIFEST} is not valid JSON ({exc})") from exc


def _make_readable(root: Path) -> None:
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _resolve(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
