"""One separation, from uploaded bytes to stems and scores; no Redis, no HTTP.

decode → mono → resample to the bundle's rate → separate (per-window progress) → soft masks
applied to every channel of the upload at its own rate (stems as the user gave the mix, which
sum to it) → museval SDR and SI-SDR per source when references were given (of the stems at
the models' rate, mono: what the references are read at), plus the oracle best-of-N.
The RQ job (`latsep.worker.jobs`) and `latsep separate` both call `run`.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf

from latsep.audio import load_audio, load_upload
from latsep.audio.io import AudioSource
from latsep.jobs import JobResult, OracleResult, ResolvedOptions, SeparationOptions
from latsep.jobs.limits import DecodeLimits
from latsep.worker.routing import Engine

# progress(fraction 0..1, stage name); may raise to abort (cancellation).
ProgressFn = Callable[[float, str], None]

# Share of the progress bar each stage takes; separation dominates.
_DECODE, _SEPARATE = 0.05, 0.90


@dataclass(frozen=True)
class SeparationOutcome:
    # source -> float32 at result.sample_rate, the upload's: (L,) for a mono upload, else
    # (L, channels) (soundfile's layout)
    stems: dict[str, np.ndarray]
    result: JobResult


def run(
    engine: Engine,
    method: str,
    sources: Sequence[str] | None,
    mixture: AudioSource,
    options: SeparationOptions | ResolvedOptions,
    *,
    references: Mapping[str, AudioSource] | None = None,
    max_seconds: float | None = None,
    progress: ProgressFn | None = None,
    default_num_candidates: int | None = None,
    limits: DecodeLimits | None = None,
) -> SeparationOutcome:
    """Separate `mixture` (a plain sum, as uploaded) into `sources` with `method`.

    `ResolvedOptions` (what the API resolved at submission) run as they are; in
    `SeparationOptions`, options left out take the serving bundle's defaults for `method` with
    this many sources, else the global ones (num_candidates: `default_num_candidates`, else
    the setting). The result records the options used. `limits` bounds what the uploads may
    decode to, read from their headers before decoding (the API checked them too; a job
    queued by an older or misconfigured API must not take the worker's memory).
    """
    from latsep.models.separation import Separator

    report = progress or (lambda fraction, stage: None)
    timings: dict[str, float] = {}
    chosen_sources = list(sources) if sources else engine.default_sources(method)
    loaded = engine.route(method, chosen_sources)
    bundle = loaded.bundle
    if isinstance(options, ResolvedOptions):
        used = options
    else:
        if default_num_candidates is None:
            from latsep.settings import get_settings

            default_num_candidates = get_settings().default_num_candidates
        used = options.resolve(
            loaded.separation_defaults(method, len(chosen_sources)), default_num_candidates
        )
    # The bundle's stored order (its tables' order); stems go back in the requested order.
    order = list(loaded.order(method, chosen_sources))
    separator = Separator(bundle, method, order)
    sample_rate = separator.sample_rate

    report(0.0, "decoding")
    start = time.perf_counter()
    for given in (mixture, *(references or {}).values()):
        _check_decode_budget(given, limits)
    upload = load_upload(mixture, max_seconds=max_seconds)  # (channels, L0) at its rate
    audio = upload.mono(sample_rate)  # (L,) what the models hear
    refs = _load_references(references or {}, order, sample_rate, len(audio))
    timings["decode_s"] = time.perf_counter() - start

    report(_DECODE, "separating")
    stage = ["separating"]  # what separate_waveform says it is doing, with its counts
    start = time.perf_counter()
    separation = separator.separate(
        audio,
        used.search_settings(),
        seed=used.seed,
        consistency=used.consistency,
        references=refs,
        progress=lambda f: report(_DECODE + _SEPARATE * float(f), stage[0]),
        stages=lambda name, done, total: stage.__setitem__(0, _stage_text(name, done, total)),
        upload=upload,  # its stems are cut block by block, as the masks come
        model_rate_stems=refs is not None,  # only the scores read them
    )
    timings["separate_s"] = time.perf_counter() - start
    upload_stems = separation.upload_stems
    assert upload_stems is not None  # asked for with upload=

    sdr = si_sdr = oracle = None
    if refs is not None:
        report(_DECODE + _SEPARATE, "scoring")
        start = time.perf_counter()
        stems_array = np.asarray(separation.stems, dtype=np.float32)  # (N, L) models' rate
        sdr, si_sdr = _scores(refs, stems_array, order, sample_rate)
        oracle = _oracle(separation, separator, audio, refs, stems_array, used, order)
        timings["score_s"] = time.perf_counter() - start

    result = JobResult(
        sources=chosen_sources,
        sample_rate=upload.sample_rate,
        num_samples=int(upload_stems[0].shape[0]),
        channels=upload.channels,
        model_sample_rate=sample_rate,
        bundle=loaded.name,
        device=engine.device,
        chosen_candidate=int(separation.chosen),
        candidate_consistency=[float(c) for c in np.ravel(separation.candidate_consistency)],
        timings={k: round(v, 4) for k, v in timings.items()},
        options=used,
        sdr=sdr,
        si_sdr=si_sdr,
        oracle=oracle,
    )
    report(1.0, "done")
    by_source = dict(zip(order, upload_stems, strict=True))  # (L, channels): soundfile's layout
    if upload.channels == 1:
        by_source = {s: stem[:, 0] for s, stem in by_source.items()}
    stems = {s: by_source[s] for s in chosen_sources}
    return SeparationOutcome(stems=stems, result=result)


def _stage_text(name: str, done: int, total: int) -> str:
    """ "separating 120/5168 tokens", "decoding stems 3/15 blocks", "masking 3/15 blocks"."""
    unit = {"separating": "tokens", "decoding stems": "blocks", "masking": "blocks"}.get(name)
    return f"{name} {done}/{total} {unit}" if unit else name


def _check_decode_budget(source: AudioSource, limits: DecodeLimits | None) -> None:
    """Raise AudioTooLarge when the header promises more than `limits` allow (bytes only:
    a path or an open file is the local CLI's, under its user's own control)."""
    if limits is None or not isinstance(source, bytes | bytearray):
        return
    try:
        info = sf.info(io.BytesIO(source))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        from latsep.audio import AudioError, ffmpeg

        if not ffmpeg.available():
            return  # not readable: load_upload says so in its own words
        try:
            found = ffmpeg.probe(bytes(source))
        except AudioError:
            return
        limits.check_format(found.channels, found.sample_rate)
        frames = int(found.duration_seconds * found.sample_rate)
        if frames > 0:
            limits.check_samples(frames, found.channels, found.sample_rate)
        return
    limits.check_format(info.channels, info.samplerate)
    if 0 < info.frames < 2**62:
        limits.check_samples(info.frames, info.channels, info.samplerate)


def _load_references(
    references: Mapping[str, AudioSource],
    sources: Sequence[str],
    sample_rate: int,
    length: int,
) -> np.ndarray | None:
    """(N, L) references in `sources` order, trimmed/zero-padded to the mixture's length.

    Scores need every source's reference; a partial set is refused rather than half-scored.
    """
    if not references:
        return None
    unknown = sorted(set(references) - set(sources))
    if unknown:
        raise ValueError(f"references for sources not separated: {', '.join(unknown)}")
    missing = [s for s in sources if s not in references]
    if missing:
        raise ValueError(f"references are needed for every source; missing {', '.join(missing)}")
    out = np.zeros((len(sources), length), dtype=np.float32)  # (N, L)
    for i, source in enumerate(sources):
        ref = load_audio(references[source], sample_rate=sample_rate, allow_silent=True)
        n = min(length, len(ref))
        out[i, :n] = ref[:n]
    return out


def _scores(
    refs: np.ndarray, stems: np.ndarray, sources: Sequence[str], sample_rate: int
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    from latsep.models.metrics import bss_sdr, si_sdr

    sdr = np.ravel(np.asarray(bss_sdr(refs, stems, sample_rate), dtype=np.float64))
    si = np.ravel(np.asarray(si_sdr(refs, stems), dtype=np.float64))
    return _per_source(sources, sdr), _per_source(sources, si)


def _oracle(
    separation: Any,
    separator: Any,
    mixture: np.ndarray,
    refs: np.ndarray,
    stems: np.ndarray,
    options: ResolvedOptions,
    sources: Sequence[str],
) -> OracleResult | None:
    """Scores of the candidate the references rank best (labelled oracle: it peeks).

    The oracle candidate goes through the same consistency step as the returned stems, so
    the two are comparable (with "ensemble", its own Wiener masks: it is one candidate).
    """
    if separation.oracle_index is None:
        return None
    index = int(separation.oracle_index)
    if index == int(separation.chosen) and options.consistency != "ensemble":
        candidate = stems
    else:  # with "wiener" or "ensemble", one candidate gets its own masks
        masks = options.consistency in ("wiener", "ensemble")
        candidate = separator.candidate_stems(separation, index, mixture, masks=masks)
        candidate = candidate.astype(np.float32)
    sdr, si = _scores(refs, candidate, sources, separator.sample_rate)
    return OracleResult(index=index, sdr=sdr, si_sdr=si)


def _per_source(sources: Sequence[str], values: np.ndarray) -> dict[str, float | None]:
    # JSON has no nan/inf: museval gives nan when every frame is silent; report null then.
    return {s: float(values[i]) if np.isfinite(values[i]) else None for i, s in enumerate(sources)}
