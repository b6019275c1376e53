"""The training configuration of one pipeline (codecs, priors, counts, bundles), from TOML.

A config file names everything needed to go from a built corpus to bundles; the
shipped presets are `latsep/configs/tiny.toml` and `default.toml`. Unknown keys
are errors, so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from latsep.bundle.defaults import check_separation_defaults
from latsep.bundle.store import check_views
from latsep.methods import METHODS_BY_CODEC, check_latent_sigmas
from latsep.models.codec import CodecConfig
from latsep.models.prior.transformer import PriorConfig

CODEC_KINDS = ("plain", "lq")


@dataclass(frozen=True)
class CodecTraining:
    steps: int = 20000
    batch_size: int = 16
    crop_seconds: float = 1.0
    learning_rate: float = 3e-4
    stft_weight: float = 0.5
    commitment_weight: float = 0.1
    lq_weight: float = 1.0  # linearization loss weight; only the "lq" codec uses it
    # Start the LQ codec from the trained plain codec's weights (when that checkpoint
    # exists) instead of from scratch: the linearization loss then only has to bend a
    # codec that already reconstructs well, which on a CPU budget is most of the work.
    lq_init_from_plain: bool = False
    stft_resolutions: tuple[tuple[int, int], ...] = (
        (2048, 512),
        (1024, 256),
        (512, 128),
        (256, 64),
    )
    bf16: bool = True  # autocast the convolutions (2.2× faster on AVX512-BF16 CPUs)
    gain_db: tuple[float, float] = (-6.0, 6.0)  # random level per stem crop
    stems: tuple[str, ...] = ("bass", "drums", "other")
    checkpoint_every: int = 500
    valid_crops: int = 8  # per stem, fixed
    valid_seconds: float = 4.0
    max_minutes: float | None = None  # wall-time budget; the run ends (resumably) at it
    lq_max_minutes: float | None = None  # the LQ codec's budget when not max_minutes

    def budget_minutes(self, kind: str) -> float | None:
        if kind == "lq" and self.lq_max_minutes is not None:
            return self.lq_max_minutes
        return self.max_minutes


@dataclass(frozen=True)
class PriorTraining:
    steps: int = 4000
    batch_size: int = 16
    learning_rate: float = 6e-4
    warmup_steps: int = 100
    checkpoint_every: int = 500
    valid_windows: int = 64
    max_minutes: float | None = None


@dataclass(frozen=True)
class CountsConfig:
    crops: int = 4000  # per table, train split
    batch_size: int = 32
    crop_seconds: float = 2.0
    gain_db: tuple[float, float] = (-6.0, 6.0)
    valid_crops: int = 200  # for the coverage figure
    # Encode the crops under bf16 autocast where that is fast (see bf16_is_fast). Counting is
    # all encoder work (7 signals per crop for 3 sources); the codec trains under bf16
    # autocast, so its bf16 tokens are as native as its fp32 ones.
    bf16: bool = False


@dataclass(frozen=True)
class BundleSpec:
    """One bundle: which codec kind and sources; tables follow from the kind."""

    name: str
    codec: str  # "plain" | "lq"
    sources: tuple[str, ...]
    # Per method, the separation options the service uses when a request leaves them out
    # (num_candidates, temperature, top_k, likelihood_weight, search): tuned on the valid
    # split and written into the bundle's manifest.
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Backoff strength β of the joint count tables (0: additive smoothing only); tuned on
    # the valid split like the defaults, recorded in the manifest's likelihood entry.
    backoff: float = 0.0
    # Per method of an LQ bundle (lqvae, hybrid), σ of the term on the mixture's continuous
    # latent (none: tokens only); tuned on the valid split, recorded in the manifest.
    latent_sigma: dict[str, float] = field(default_factory=dict)
    # Band views of the mixture ({name: {filter, cutoff_hz, order, weight}}), counted for all
    # the sources of a bundle with MLASS tables (models/separation/views.py).
    views: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.codec not in CODEC_KINDS:
            raise ValueError(f"bundle codec must be one of {CODEC_KINDS}; got {self.codec!r}")
        if len(self.sources) < 2 or len(set(self.sources)) != len(self.sources):
            raise ValueError("a bundle needs at least two distinct sources")
        if not 0 <= self.backoff < float("inf"):
            raise ValueError(f"[[bundles]] {self.name!r}: backoff must be finite and >= 0")
        try:
            check_latent_sigmas(self.latent_sigma, METHODS_BY_CODEC[self.codec])
        except ValueError as exc:
            raise ValueError(f"[[bundles]] {self.name!r}: {exc}") from exc
        if self.views and not self.has_chain:
            raise ValueError(f"[[bundles]] {self.name!r}: views need three or more sources")
        try:
            check_views(self.views)
        except ValueError as exc:
            raise ValueError(f"[[bundles]] {self.name!r}: {exc}") from exc
        # save_bundle checks these again; checking them here fails a config with a typo in
        # its defaults at load time instead of after hours of training.
        try:
            check_separation_defaults(
                self.defaults, METHODS_BY_CODEC[self.codec], has_chain=self.has_chain
            )
        except ValueError as exc:
            raise ValueError(f"[[bundles]] {self.name!r}: {exc}") from exc

    @property
    def has_chain(self) -> bool:
        """Whether the bundle gets chain and marginal tables (MLASS over three or more
        sources); the pipeline's TablePlan builds them on the same condition."""
        return self.codec == "plain" and len(self.sources) > 2


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    seed: int = 0
    codec: CodecConfig = field(default_factory=CodecConfig.default)
    codec_training: CodecTraining = field(default_factory=CodecTraining)
    prior: PriorConfig = field(default_factory=PriorConfig.default)
    prior_training: PriorTraining = field(default_factory=PriorTraining)
    counts: CountsConfig = field(default_factory=CountsConfig)
    bundles: tuple[BundleSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.prior.num_tokens != self.codec.num_tokens:
            raise ValueError(
                f"prior num_tokens {self.prior.num_tokens} != codec num_tokens "
                f"{self.codec.num_tokens}"
            )
        for spec in self.bundles:  # cutoffs against the codec's rate, before any training
            try:
                check_views(spec.views, sample_rate=self.codec.sample_rate)
            except ValueError as exc:
                raise ValueError(f"[[bundles]] {spec.name!r}: {exc}") from exc

    def codec_kinds(self) -> tuple[str, ...]:
        return tuple(k for k in CODEC_KINDS if any(b.codec == k for b in self.bundles))

    def sources_for(self, kind: str) -> tuple[str, ...]:
        """Every source some bundle of this codec kind needs a prior for, in first-seen order."""
        seen: list[str] = []
        for bundle in self.bundles:
            if bundle.codec == kind:
                seen += [s for s in bundle.sources if s not in seen]
        return tuple(seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "codec": self.codec.to_dict(),
            "codec_training": _plain(self.codec_training),
            "prior": self.prior.to_dict(),
            "prior_training": _plain(self.prior_training),
            "counts": _plain(self.counts),
            "bundles": [_plain(b) for b in self.bundles],
        }


def load_config(source: str | Path) -> PipelineConfig:
    """A config from a TOML path, or a preset name ("tiny", "default") shipped in the package."""
    path = Path(source)
    if path.suffix != ".toml" and not path.exists():
        text = resources.files("latsep.configs").joinpath(f"{source}.toml").read_text()
    else:
        text = path.read_text(encoding="utf-8")
    return parse_config(tomllib.loads(text))


def parse_config(data: dict[str, Any]) -> PipelineConfig:
    data = dict(data)
    name = data.pop("name")
    seed = int(data.pop("seed", 0))
    codec = CodecConfig.from_dict(data.pop("codec", {}))
    prior_data = dict(data.pop("prior", {}))
    prior_data.setdefault("num_tokens", codec.num_tokens)
    config = PipelineConfig(
        name=name,
        seed=seed,
        codec=codec,
        codec_training=_build(CodecTraining, data.pop("codec_training", {})),
        prior=PriorConfig.from_dict(prior_data),
        prior_training=_build(PriorTraining, data.pop("prior_training", {})),
        counts=_build(CountsConfig, data.pop("counts", {})),
        bundles=tuple(
            BundleSpec(
                name=_known_bundle_keys(b)["name"],
                codec=b["codec"],
                sources=tuple(b["sources"]),
                defaults=_copied(b.get("defaults", {})),
                backoff=float(b.get("backoff", 0.0)),
                latent_sigma={m: float(s) for m, s in b.get("latent_sigma", {}).items()},
                views=_copied(b.get("views", {})),
            )
            for b in data.pop("bundles", [])
        ),
    )
    if data:
        raise ValueError(f"unknown config sections: {sorted(data)}")
    return config


def _known_bundle_keys(entry: dict[str, Any]) -> dict[str, Any]:
    known = {"name", "codec", "sources", "defaults", "backoff", "latent_sigma", "views"}
    unknown = set(entry) - known
    if unknown:
        raise ValueError(f"unknown [[bundles]] keys: {sorted(unknown)}")
    return entry


def _copied(defaults: Any) -> Any:
    """A copy of [[bundles]].defaults; what is not a table is left for BundleSpec to refuse."""
    if not isinstance(defaults, Mapping):
        return defaults
    return {m: dict(v) if isinstance(v, Mapping) else v for m, v in defaults.items()}


def _build(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    converted = {}
    for key, value in values.items():
        if isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        converted[key] = value
    return cls(**converted)


def _plain(obj: Any) -> dict[str, Any]:
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[f.name] = value
    return out
