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

import torch

from latsep.bundle.bundle import Bundle
from latsep.bundle.defaults import BY_SOURCES, check_separation_defaults
from latsep.bundle.manifest import (
    CODEC_FILE,
    DEFAULT_SMOOTHING,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    BundleError,
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
from latsep.models.separation.views import BandFilter


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
    `views`: {name: {"filter", "cutoff_hz", "order", "weight"}} of the band views whose
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
        check_views(manifest.get("likelihood", {}).get("views", {}))
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
    staging = root / f".{MANIFEST}.tmp"
    staging.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    staging.chmod(0o644)
    os.replace(staging, root / MANIFEST)
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
    removes it: the method scores tokens only again) and/or band views' weights ({view: λ})
    in a bundle's manifest (validated first, replaced atomically; weights and tables
    untouched); returns the manifest's likelihood entry."""
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
    staging = root / f".{MANIFEST}.tmp"
    staging.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    staging.chmod(0o644)
    os.replace(staging, root / MANIFEST)
    return likelihood


def check_views(views: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each view's filter (`BandFilter`) and weight: λ (a finite number > 0) for every method,
    or {method: λ} (a method not named does not use the view), as stored."""
    checked = {}
    for name, entry in views.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"views.{name} must be an object")
        try:
            band = BandFilter.from_manifest(entry)
        except ValueError as exc:
            raise ValueError(f"views.{name}: {exc}") from exc
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
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < math.inf:
        raise ValueError(f"views.{name}.weight must be a finite number > 0; got {weight!r}")
    return float(weight)


def add_views(
    path: str | Path,
    tables: Mapping[str, list[COO]],
    views: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Add (or replace) band-view tables ("view-<name>:a+b+c", counted with this bundle's
    codec) and their views' filters and weights to a bundle in place: table files first,
    the manifest (hashes included) replaced atomically last. Returns likelihood.views."""
    root = Path(path)
    manifest = _read_manifest(root)
    validate_manifest(manifest, root, sample_rate=None)
    likelihood = dict(manifest.get("likelihood", {}))
    merged = check_views({**likelihood.get("views", {}), **views})
    k = int(manifest["num_tokens"])
    entries, files = dict(manifest["tables"]), dict(manifest["files"])
    for table_name, levels in tables.items():
        kind, table_sources = split_table_name(table_name)
        if view_name(kind) is None or view_name(kind) not in merged:
            raise ValueError(f"{table_name!r} is not a table of the views given")
        if not set(table_sources) <= set(manifest["sources"]):
            raise ValueError(f"table {table_name!r} names a source the bundle lacks")
        relative = table_file(table_name)
        staging = root / f".{Path(relative).name}.tmp"
        save_table(staging, levels)
        staging.chmod(0o644)
        os.replace(staging, root / relative)
        files[relative] = sha256_of(root / relative)
        entries[table_name] = {
            "file": relative,
            "levels": 1,
            "shape": list(table_shape(kind, len(table_sources), k)),
            "nnz": [int(c.shape[0]) for _, c in levels],
            "total": [int(c.sum()) for _, c in levels],
        }
    likelihood["views"] = merged
    manifest.update(tables=entries, files=dict(sorted(files.items())), likelihood=likelihood)
    validate_manifest(manifest, root, sample_rate=None)
    staging = root / f".{MANIFEST}.tmp"
    staging.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    staging.chmod(0o644)
    os.replace(staging, root / MANIFEST)
    return merged


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
