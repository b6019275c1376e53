"""A directory of bundles (e.g. artifacts/tiny/{plain,lq}) served together."""

from __future__ import annotations

from pathlib import Path

import torch

from latsep.bundle.bundle import Bundle
from latsep.bundle.manifest import MANIFEST, BundleError
from latsep.bundle.store import load_bundle


def find_bundles(path: str | Path) -> list[Path]:
    """`path` itself when it is a bundle, else its immediate sub-directories that are."""
    root = Path(path)
    if (root / MANIFEST).is_file():
        return [root]
    if not root.is_dir():
        raise BundleError(f"no bundle or bundle directory at {root}")
    found = sorted(p for p in root.iterdir() if (p / MANIFEST).is_file())
    if not found:
        raise BundleError(f"{root} holds no bundle (no */{MANIFEST})")
    return found


def load_bundles(path: str | Path, device: str | torch.device = "auto") -> dict[str, Bundle]:
    """Load every bundle under `path`; method → the bundle serving it (first one wins,
    in name order, so two bundles that both serve a method do not fight)."""
    by_method: dict[str, Bundle] = {}
    for bundle_path in find_bundles(path):
        bundle = load_bundle(bundle_path, device)
        for method in bundle.methods:
            by_method.setdefault(method, bundle)
    return by_method
