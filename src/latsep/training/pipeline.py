"""From a built corpus to bundles: codecs → token streams → priors → counts → bundles.

Every stage writes into a run directory and is skipped when its output is there, so
`latsep train bundle` can be interrupted and re-run; a stage with a wall-time budget
that ran out counts as done (its last checkpoint is used).

    run_root/codec-<kind>/          checkpoint (model.safetensors, optimizer.pt, state.json)
    run_root/tokens-<kind>/<source>.safetensors
    run_root/prior-<kind>-<source>/ checkpoint
    run_root/counts-<bundle>/       tables.safetensors + result.json

Warm starts (`init_from`: shipped bundles) make training accumulate instead of starting from
zero: a bundle's codec is taken as it is (training it further would change its tokens and
orphan the bundle's priors and counts), each prior continues from the bundle's weights, and
new counts are added to the bundle's tables.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from latsep.bundle import Bundle, load_bundle, save_bundle
from latsep.models.codec import Codec
from latsep.models.prior.transformer import TransformerPrior
from latsep.models.separation.views import ViewFilter
from latsep.training.checkpoint import RunState, read_state
from latsep.training.codec_training import CodecRun, codec_run_dir, train_codec
from latsep.training.config import BundleSpec, PipelineConfig
from latsep.training.count_building import CountResult, build_counts
from latsep.training.counts import TablePlan
from latsep.training.data import StemStore, corpus_hash
from latsep.training.device import git_commit, seed_everything
from latsep.training.prior_training import PriorRun, train_prior
from latsep.training.tokens import encode_store, load_streams, save_streams, streams_codec
from latsep.training.view_counts import COO, count_views, view_table_name

log = logging.getLogger(__name__)


@dataclass
class Pipeline:
    """One config, one corpus, one run directory; stores are loaded once and shared."""

    config: PipelineConfig
    corpus: Path
    run_root: Path
    device: torch.device
    progress: bool = True
    init_from: tuple[Path, ...] = ()  # shipped bundles to warm-start from (one per codec kind)

    def __post_init__(self) -> None:
        self.corpus = Path(self.corpus)
        self.run_root = Path(self.run_root)
        self._stores: dict[str, StemStore] = {}
        self._codecs: dict[str, CodecRun] = {}
        self._init: dict[str, tuple[Bundle, str]] = {}
        for path in self.init_from:
            bundle = load_bundle(path, self.device)
            if bundle.codec_kind in self._init:
                raise ValueError(f"two warm-start bundles with a {bundle.codec_kind} codec")
            manifest_sha = hashlib.sha256((Path(path) / "manifest.json").read_bytes()).hexdigest()
            self._init[bundle.codec_kind] = (bundle, manifest_sha[:12])

    def warm_start(self, kind: str) -> tuple[Bundle, str] | None:
        """The bundle (and its manifest's short sha) this codec kind starts from, if any."""
        return self._init.get(kind)

    def store(self, split: str, stems: tuple[str, ...]) -> StemStore:
        if split not in self._stores:
            all_stems = tuple(
                dict.fromkeys(
                    self.config.codec_training.stems
                    + tuple(s for b in self.config.bundles for s in b.sources)
                )
            )
            self._stores[split] = StemStore(self.corpus, split, all_stems)
        return self._stores[split].subset(stems)

    # -- stages ---------------------------------------------------------------------------

    def codec(self, kind: str) -> CodecRun:
        start = self.warm_start(kind)
        if kind not in self._codecs and start is not None:
            bundle, sha = start
            codec = bundle.codec.float().eval()
            state = RunState(finished=True, extra={"init_from": f"{bundle.root}@{sha}"})
            quality = bundle.manifest.get("quality", {}).get("codec", {})
            self._codecs[kind] = CodecRun(codec, state, quality)
        if kind not in self._codecs:
            if kind == "lq" and self.config.codec_training.lq_init_from_plain:
                self.codec("plain")  # the LQ codec starts from the finished plain one
            seed_everything(self.config.seed)
            stems = self.config.codec_training.stems
            self._codecs[kind] = train_codec(
                self.config,
                kind,
                self.corpus,
                self.run_root,
                device=self.device,
                progress=self.progress,
                train_store=self.store("train", stems),
                valid_store=self.store("valid", stems),
            )
        return self._codecs[kind]

    def codec_id(self, kind: str) -> str:
        """Which codec checkpoint downstream caches were made with: kind and step, or the
        warm-start bundle's manifest sha."""
        start = self.warm_start(kind)
        if start is not None:
            return f"{kind}@bundle-{start[1]}"
        return f"{kind}@{self.codec(kind).state.step}"

    def prior(self, kind: str, source: str) -> PriorRun:
        codec = self.codec(kind).codec
        codec_id = self.codec_id(kind)
        token_path = self.run_root / f"tokens-{kind}" / f"{source}.safetensors"
        if token_path.is_file() and streams_codec(token_path) not in (None, codec_id):
            log.info("tokens in %s are from another codec checkpoint: re-encoding", token_path)
            token_path.unlink()
        if not token_path.is_file():
            gain = self.config.counts.gain_db
            streams = {
                split: encode_store(
                    codec,
                    self.store(split, (source,)),
                    source,
                    gain_db=gain,
                    seed=self.config.seed + 7 * (split == "valid"),
                    device=self.device,
                )
                for split in ("train", "valid")
            }
            save_streams(token_path, streams, codec_id=codec_id)
        seed_everything(self.config.seed)
        start = self.warm_start(kind)
        init = None
        if start is not None and source in start[0].sources:
            init = {k: v.detach().cpu() for k, v in start[0].prior(source).state_dict().items()}
        return train_prior(
            self.config.prior,
            self.config.prior_training,
            load_streams(token_path),
            self.run_root / f"prior-{kind}-{source}",
            seed=self.config.seed,
            device=self.device,
            progress=self.progress,
            name=f"prior-{kind}-{source}",
            tokens_from=codec_id,
            init_weights=init,
            init_from=None if start is None else f"{start[0].root}@{start[1]}",
        )

    def counts(self, spec: BundleSpec) -> CountResult:
        run_dir = self.run_root / f"counts-{spec.name}"
        codec_id = self.codec_id(spec.codec)
        cached = _load_counts(run_dir, codec_id)
        if cached is not None:
            return cached
        codec = self.codec(spec.codec).codec
        plan = TablePlan(spec.sources, with_chain=spec.has_chain)
        start = self.warm_start(spec.codec)
        initial, seed = None, self.config.seed
        if start is not None:
            bundle, sha = start
            initial = {
                name: [(i.numpy(), c.numpy()) for i, c in levels]
                for name, levels in bundle.raw_tables.items()
                if name in plan.names()
            }
            seed += 1 + int(sha, 16) % 1_000_000  # new crops, not the bundle's again
        result = build_counts(
            codec,
            self.store("train", spec.sources),
            self.store("valid", spec.sources),
            plan,
            self.config.counts,
            seed=seed,
            device=self.device,
            fit_sigma=spec.codec == "lq",
            progress=self.progress,
            initial=initial,
        )
        _save_counts(run_dir, result, codec_id)
        return result

    def view_counts(self, spec: BundleSpec) -> dict[str, list[COO]]:
        """The spec's band-view tables over the config's count crops, added to a warm
        start's tables of the same views (the same filter: counts of another are not)."""
        if not spec.views:
            return {}
        codec = self.codec(spec.codec).codec
        start = self.warm_start(spec.codec)
        bands = {name: ViewFilter.from_manifest(entry) for name, entry in spec.views.items()}
        initial, seed = {}, self.config.seed + 2
        if start is not None:
            bundle, sha = start
            stored = bundle.manifest.get("likelihood", {}).get("views", {})
            for name, band in bands.items():
                table = view_table_name(name, spec.sources)
                same = name in stored and ViewFilter.from_manifest(stored[name]) == band
                if same and table in bundle.raw_tables:
                    initial[table] = [(i.numpy(), c.numpy()) for i, c in bundle.raw_tables[table]]
            seed += 1 + int(sha, 16) % 1_000_000  # new crops, not the bundle's again
        settings = self.config.counts
        return count_views(
            codec,
            self.store("train", spec.sources),
            bands,
            crops=settings.crops,
            seed=seed,
            gain_db=settings.gain_db,
            crop_seconds=settings.crop_seconds,
            batch_size=settings.batch_size,
            progress=self.progress,
            initial=initial,
        )

    def bundle(self, spec: BundleSpec, out_dir: Path) -> Path:
        codec_run = self.codec(spec.codec)
        priors = {source: self.prior(spec.codec, source) for source in spec.sources}
        counts = self.counts(spec)
        views = self.view_counts(spec)
        quality = {
            "codec": codec_run.quality,
            "priors": {s: run.quality for s, run in priors.items()},
            "counts": {
                "triples_per_table": counts.triples,
                "valid_coverage": counts.coverage,
                "gaussian_sigma": counts.gaussian_sigma,
                "linear_agreement": counts.linear_agreement,
            },
        }
        provenance = self.provenance(
            {
                "codec_steps": codec_run.state.step,
                "codec_finished": codec_run.state.finished,
                "prior_steps": {s: run.state.step for s, run in priors.items()},
                "bundle": spec.name,
            }
        )
        return save_bundle(
            out_dir / spec.name,
            codec=codec_run.codec.cpu() if self.device.type != "cpu" else codec_run.codec,
            codec_kind=spec.codec,
            priors={s: run.prior for s, run in priors.items()},
            tables={**counts.tables, **views},
            gaussian_sigma=counts.gaussian_sigma,
            name=spec.name,
            provenance=provenance,
            quality=quality,
            separation_defaults=spec.defaults or None,
            backoff=spec.backoff,
            latent_sigma=spec.latent_sigma or None,
            views=spec.views or None,
            overwrite=True,
        )

    def provenance(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "config_name": self.config.name,
            "config": self.config.to_dict(),
            "corpus": str(self.corpus),
            "corpus_index_sha256": corpus_hash(self.corpus),
            "git_commit": git_commit(),
            "torch": torch.__version__,
            "device": str(self.device),
            "host": platform.node(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "init_from": {kind: f"{b.root}@{sha}" for kind, (b, sha) in self._init.items()},
            **extra,
        }


def codec_checkpoint_exists(run_root: Path, kind: str) -> bool:
    return read_state(codec_run_dir(run_root, kind)) is not None


def load_codec_checkpoint(config: PipelineConfig, run_root: Path, kind: str) -> Codec:
    """The latest checkpoint of a codec run, whatever its state (for inspection)."""
    from latsep.training.checkpoint import load_checkpoint

    codec = Codec(config.codec)
    if load_checkpoint(codec_run_dir(run_root, kind), codec, None) is None:
        raise FileNotFoundError(f"no codec checkpoint in {codec_run_dir(run_root, kind)}")
    return codec.eval()


def load_prior_checkpoint(config: PipelineConfig, run_dir: Path) -> TransformerPrior:
    from latsep.training.checkpoint import load_checkpoint

    prior = TransformerPrior(config.prior)
    if load_checkpoint(run_dir, prior, None) is None:
        raise FileNotFoundError(f"no prior checkpoint in {run_dir}")
    return prior.eval()


def _save_counts(run_dir: Path, result: CountResult, codec_id: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {}
    levels = {}
    for name, table in result.tables.items():
        levels[name] = len(table)
        for level, (indices, counts) in enumerate(table):
            tensors[f"{name}/{level}/indices"] = torch.from_numpy(np.ascontiguousarray(indices))
            tensors[f"{name}/{level}/counts"] = torch.from_numpy(np.ascontiguousarray(counts))
    save_file(tensors, str(run_dir / "tables.safetensors"))
    meta = {
        "levels": levels,
        "coverage": result.coverage,
        "triples": result.triples,
        "gaussian_sigma": result.gaussian_sigma,
        "linear_agreement": result.linear_agreement,
        "codec": codec_id,
    }
    (run_dir / "result.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


def _load_counts(run_dir: Path, codec_id: str) -> CountResult | None:
    """Cached counts, or None when absent or counted with another codec checkpoint."""
    if not (run_dir / "result.json").is_file() or not (run_dir / "tables.safetensors").is_file():
        return None
    meta = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    if meta.get("codec") != codec_id:
        return None
    tensors = load_file(str(run_dir / "tables.safetensors"))
    tables = {
        name: [
            (tensors[f"{name}/{i}/indices"].numpy(), tensors[f"{name}/{i}/counts"].numpy())
            for i in range(count)
        ]
        for name, count in meta["levels"].items()
    }
    return CountResult(
        tables,
        meta["coverage"],
        meta["triples"],
        meta["gaussian_sigma"],
        meta["linear_agreement"],
    )
