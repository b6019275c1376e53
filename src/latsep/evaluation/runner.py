"""`run_bench`: every row over the same evaluation chunks, cached per chunk, then the files.

Outputs under config.out: chunks.jsonl (the resume cache), results.json, results.md,
sdr.png, spectrogram.png.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latsep.bundle import Bundle, find_bundles, load_bundle
from latsep.bundle.manifest import sha256_of
from latsep.corpus import Chunk, Corpus, evaluation_chunks
from latsep.evaluation.aggregate import aggregate
from latsep.evaluation.cache import ChunkCache, chunk_id
from latsep.evaluation.cases import CEILING, METHOD, Case, case_key, plan_cases
from latsep.evaluation.config import SOURCE_SETS, BenchConfig, beam_skipped
from latsep.evaluation.machine import machine_info
from latsep.evaluation.plots import sdr_plot, spectrogram_plot
from latsep.evaluation.report import markdown_report
from latsep.evaluation.scoring import (
    baseline_estimate,
    ceiling_estimate,
    run_method,
    score,
)
from latsep.methods import METHODS, SearchSettings
from latsep.models.separation import Separator, separate_waveform
from latsep.models.separation.hpss import MASK_EXPONENT
from latsep.models.separation.masks import ONSET_FRAMES, STEADY_FRAMES
from latsep.models.separation.separator import SeparateFn

Progress = Callable[[str], None]
_PROVENANCE = (
    "config_name",
    "git_commit",
    "created",
    "corpus_index_sha256",
    "codec_steps",
    "prior_steps",
    "torch",
    "device",
)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    return device


def _device_name(device: torch.device) -> str:
    """The device, with the GPU's model: timings on another GPU are other timings."""
    if device.type == "cuda":
        return f"{device.type}: {torch.cuda.get_device_name(device)}"
    return device.type


def _keyed_by_setup(cases: list[Case], setup: dict[str, Any]) -> list[Case]:
    """Method rows with the machine setup (torch threads, device) in their resume key.

    Their chunk records carry the separation's seconds, which another setup would not
    reproduce: a run with other threads or another device must re-time them rather than
    report cached timings under its own machine line. The reference rows hold no timings
    and stay shared between setups.
    """
    return [
        replace(case, key=case_key({"row": case.key, **setup})) if case.kind == METHOD else case
        for case in cases
    ]


def chunk_seed(seed: int, chunk: Chunk) -> int:
    """A seed per chunk, independent of which other chunks run (so --quick and resumed runs
    draw exactly what the full run draws for the same chunk)."""
    text = f"{seed}:{chunk.song_id}:{chunk.start}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")


def _case_stems(chunk: Chunk, case: Case, level_db: float) -> np.ndarray:
    """The chunk's stems (N, L), float64, in the case's order, at the run's level shift."""
    stems = SOURCE_SETS[case.num_sources]  # the order evaluation_chunks loaded them in
    ordered = np.asarray(chunk.stems, np.float64)[[stems.index(s) for s in case.sources]]
    return ordered * 10.0 ** (level_db / 20.0)


def _bundle_info(bundle: Bundle, sha: str) -> dict[str, Any]:
    provenance = bundle.manifest.get("provenance", {})
    return {
        "name": bundle.name,
        "path": str(bundle.root),
        "manifest_sha256": sha,
        "codec": bundle.codec_kind,
        "methods": list(bundle.methods),
        "sources": list(bundle.sources),
        "num_tokens": bundle.num_tokens,
        "hop_length": bundle.hop_length,
        "provenance": {k: provenance[k] for k in _PROVENANCE if k in provenance},
    }


def _example_case(cases: list[Case]) -> Case | None:
    """The spectrogram's method row: the most sources, then the order of METHODS."""
    methods = [c for c in cases if c.kind == METHOD]
    if not methods:
        return None
    return min(methods, key=lambda c: (-c.num_sources, METHODS.index(str(c.method))))


def run_bench(
    config: BenchConfig,
    *,
    separate: SeparateFn = separate_waveform,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run (or continue) the benchmark; returns results.json's content."""
    say = progress or (lambda message: None)
    torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    bundles = [load_bundle(path, device) for path in find_bundles(config.bundles)]
    bundle_ids = {b.name: bundle_identity(b) for b in bundles}
    by_name = {b.name: b for b in bundles}
    corpus_sha = sha256_of(Path(config.corpus) / "index.json")
    rate = Corpus(config.corpus).sample_rate
    for bundle in bundles:
        if bundle.sample_rate != rate:
            raise ValueError(
                f"bundle {bundle.name} runs at {bundle.sample_rate} Hz, the corpus at {rate} Hz"
            )
    identity = {
        "corpus": corpus_sha,
        "split": config.split,
        "seconds": config.seconds,
        "seed": config.seed,
        "level_db": config.level_db,
        "backoff": config.backoff,
        "level_norm": config.level_norm,
    }
    if config.latent_sigma is not None:  # only when set: earlier runs' cached rows stay valid
        identity["latent_sigma"] = config.latent_sigma
    if not config.views:  # likewise
        identity["views"] = False
    if config.hpss_masks:  # rows made before the masks' prior had none: they are stale
        identity["mask_prior"] = MASK_EXPONENT
    if config.source_smoothing:  # rows made with one 5-frame average for all are stale
        identity["smoothing"] = {"steady": STEADY_FRAMES, "onsets": ONSET_FRAMES}
    cases, skipped = plan_cases(
        bundles,
        methods=config.methods,
        source_counts=config.sources,
        overrides=config.overrides,
        identity=identity,
        bundle_ids=bundle_ids,
        # the Separator leaves the gains out where the power they were fitted on is ablated
        mask_gains=config.mask_gains and config.hpss_masks and config.source_smoothing,
    )
    cases = _keyed_by_setup(cases, {"threads": config.threads, "device": _device_name(device)})
    for case in cases:
        if case.kind == METHOD and beam_skipped(str(case.method), config.overrides):
            say(f"--search beam: {case.method} N={case.num_sources} has no beam search; it samples")
    chunks = {
        n: evaluation_chunks(
            config.corpus,
            SOURCE_SETS[n],
            split=config.split,
            seconds=config.seconds,
            count=config.chunks,
            seed=config.seed,
        )
        for n in sorted({c.num_sources for c in cases})
    }
    cache = ChunkCache(Path(config.out) / "chunks.jsonl")
    example = _example_case(cases)
    example_stems: np.ndarray | None = None

    rows = []
    for case in cases:
        todo = chunks[case.num_sources]
        records = []
        for i, chunk in enumerate(todo):
            cid = chunk_id(chunk.song_id, chunk.start)
            record = cache.get(case.key, cid)
            status = "cached"
            if record is None:
                stems = _case_stems(chunk, case, config.level_db)  # (N, L)
                fields, returned = _measure(case, chunk, stems, config, by_name, separate)
                if case is example and i == 0:
                    example_stems = returned
                cache.add(
                    {
                        "case": case.key,
                        "chunk": cid,
                        "song_id": chunk.song_id,
                        "start": chunk.start,
                        **fields,
                    }
                )
                record = cache.get(case.key, cid)
                status = f"{record['seconds']:.2f} s" if "seconds" in record else "scored"
            records.append(record)
            say(f"{case.label} N={case.num_sources} chunk {i + 1}/{len(todo)} {cid}: {status}")
        rows.append(
            {
                **case.describe(),
                "aggregate": aggregate(records, case.sources, config.seconds),
                "chunks": records,
            }
        )

    results = {
        "config": config.to_dict(),
        "machine": machine_info(device),
        "corpus": {
            "path": str(config.corpus),
            "index_sha256": corpus_sha,
            "chunks": {
                str(n): [chunk_id(c.song_id, c.start) for c in cs] for n, cs in chunks.items()
            },
        },
        "bundles": [_bundle_info(b, bundle_ids[b.name]) for b in bundles],
        "skipped": [vars(s) for s in skipped],
        "rows": rows,
    }
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown_report(results), encoding="utf-8")
    if any(r["kind"] == METHOD for r in rows):
        sdr_plot(rows, out / "sdr.png")
    if example is not None and chunks[example.num_sources]:
        _example_plot(
            example,
            chunks[example.num_sources][0],
            example_stems,
            by_name,
            config,
            separate,
            out / "spectrogram.png",
        )
    say(f"wrote {out}/results.json, results.md, sdr.png, spectrogram.png")
    return results


def _measure(
    case: Case,
    chunk: Chunk,
    stems: np.ndarray,
    config: BenchConfig,
    bundles: dict[str, Bundle],
    separate: SeparateFn,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """One row's figures on one chunk (stems (N, L) in the row's order); for a method row
    also the stems it returns (ensemble Wiener)."""
    if case.kind == METHOD:
        seed = chunk_seed(config.seed, chunk)
        separator = _separator(case, bundles, config, separate)
        fields, returned = run_method(separator, stems, _settings(case), seed)
        return {"seed": seed, **fields}, returned
    if case.kind == CEILING:
        estimate = ceiling_estimate(bundles[str(case.bundle)].codec, stems)
    else:
        estimate = baseline_estimate(stems.sum(0), case.num_sources)  # the plain-sum mixture
    sample_rate = next(iter(bundles.values())).sample_rate
    return {"scores": score(stems, estimate, case.sources, sample_rate)}, None


def bundle_identity(bundle: Bundle) -> str:
    """The sha256 of the bundle's manifest without its mask gains: a method row's own gains
    join its identity (`plan_cases`), so fitting one method's gains leaves the other rows'
    cached results valid. Without gains it is the manifest file's own sha256 (the manifest
    is written as json.dumps(indent=1), the bundle's save and set-* commands' format)."""
    kept = {k: v for k, v in bundle.manifest.items() if k != "mask_gains"}
    return hashlib.sha256((json.dumps(kept, indent=1) + "\n").encode()).hexdigest()


def _separator(
    case: Case, bundles: dict[str, Bundle], config: BenchConfig, separate: SeparateFn
) -> Separator:
    """The method row's separator, with the run's likelihood and level conditions."""
    return Separator(
        bundles[str(case.bundle)],
        str(case.method),
        case.sources,
        backoff=config.backoff,
        latent_sigma=config.latent_sigma,
        level_norm=config.level_norm,
        views=config.views,
        hpss_masks=config.hpss_masks,
        source_smoothing=config.source_smoothing,
        mask_gains=config.mask_gains,
        separate=separate,
    )


def _settings(case: Case) -> SearchSettings:
    if case.settings is None:
        raise ValueError(f"method row {case.key} has no search settings")
    return case.settings


def _example_plot(
    case: Case,
    chunk: Chunk,
    estimates: np.ndarray | None,
    bundles: dict[str, Bundle],
    config: BenchConfig,
    separate: SeparateFn,
    path: Path,
) -> None:
    """Spectrograms of the example chunk; separates it again when it came from the cache."""
    stems = _case_stems(chunk, case, config.level_db)
    bundle = bundles[str(case.bundle)]
    if estimates is None:
        separator = _separator(case, bundles, config, separate)
        seed = chunk_seed(config.seed, chunk)
        _fields, estimates = run_method(separator, stems, _settings(case), seed)
    title = (
        f"{case.method}, {case.num_sources} sources, ensemble Wiener (the default)\n"
        f"{chunk.song_id} at {chunk.start / bundle.sample_rate:.1f} s"
    )
    spectrogram_plot(
        stems.sum(0),
        stems,
        estimates,
        case.sources,
        bundle.sample_rate,
        title,
        path,
    )
