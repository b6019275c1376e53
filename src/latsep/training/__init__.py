"""Offline training: codecs, priors, count tables and bundles, resumable, from a corpus."""

from latsep.training.config import (
    BundleSpec,
    CodecTraining,
    CountsConfig,
    PipelineConfig,
    PriorTraining,
    load_config,
    parse_config,
)
from latsep.training.count_building import CountResult, build_counts
from latsep.training.counts import SparseCounter, TableCounter, TablePlan
from latsep.training.device import git_commit, resolve_device, seed_everything
from latsep.training.pipeline import Pipeline

__all__ = [
    "BundleSpec",
    "CodecTraining",
    "CountResult",
    "CountsConfig",
    "Pipeline",
    "PipelineConfig",
    "PriorTraining",
    "SparseCounter",
    "TableCounter",
    "TablePlan",
    "build_counts",
    "git_commit",
    "load_config",
    "parse_config",
    "resolve_device",
    "seed_everything",
]
