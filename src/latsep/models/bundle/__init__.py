"""Bundles: a trained codec, priors and count tables as data (manifest + safetensors/npz)."""

from latsep.models.bundle.bundle import Bundle
from latsep.models.bundle.collection import find_bundles, load_bundles
from latsep.models.bundle.defaults import DEFAULT_FIELDS
from latsep.models.bundle.manifest import FORMAT_VERSION, BundleError
from latsep.models.bundle.store import (
    load_bundle,
    save_bundle,
    set_likelihood,
    set_separation_defaults,
)

__all__ = [
    "DEFAULT_FIELDS",
    "FORMAT_VERSION",
    "Bundle",
    "BundleError",
    "find_bundles",
    "load_bundle",
    "load_bundles",
    "save_bundle",
    "set_likelihood",
    "set_separation_defaults",
]
