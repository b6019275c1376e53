"""Bundles: a trained codec, priors and count tables as data (manifest + safetensors/npz)."""

from latsep.bundle.bundle import Bundle
from latsep.bundle.collection import find_bundles, load_bundles
from latsep.bundle.defaults import DEFAULT_FIELDS
from latsep.bundle.manifest import FORMAT_VERSION, BundleError
from latsep.bundle.store import (
    add_views,
    load_bundle,
    save_bundle,
    set_likelihood,
    set_mask_gains,
    set_separation_defaults,
)

__all__ = [
    "DEFAULT_FIELDS",
    "FORMAT_VERSION",
    "Bundle",
    "BundleError",
    "add_views",
    "find_bundles",
    "load_bundle",
    "load_bundles",
    "save_bundle",
    "set_likelihood",
    "set_mask_gains",
    "set_separation_defaults",
]
