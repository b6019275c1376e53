"""Long audio: windows of tokens, candidates ranked by mixture consistency, Wiener stems.

The worker calls `separate_waveform`. The models see the *mean* of the sources: the codec
encodes mixture / N; each source's tokens decode to that source at its own level, so the
decoded sources should sum to the uploaded mixture y. Windows follow the priors' context;
each candidate continues from its own previous tokens (the prefix), so sources stay
continuous, and the whole token sequences are decoded once at the end (no seams).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from latsep.audio import SAMPLE_RATE, resample
from latsep.audio.io import Upload
from latsep.models.prior.protocol import Prior
from latsep.models.separation.band_gains import BandGains
from latsep.models.separation.blocks import (
    BLOCK_FRAMES,
    CandidateScores,
    block_frames_for,
    decode_block,
    plan_blocks,
)
from latsep.models.separation.chunks import (
    bf16_is_fast,
    codec_device,
    decode_rows,
    decode_tokens,
)
from latsep.models.separation.codec import Codec
from latsep.models.separation.engine import separate
from latsep.models.separation.hpss import MASK_EXPONENT, MaskPrior
from latsep.models.separation.masks import (
    SMOOTH_FRAMES,
    UPLOAD_BLOCK_FRAMES,
    MaskApplier,
    Smoothing,
    StftGrid,
    TimeSmoother,
    masks_from_power,
    segment_power,
)
from latsep.models.separation.observation import level_gain, models_input, observe_mixture
from latsep.models.separation.result import Separation
from latsep.models.separation.views import MixtureView, ObservedViews, observe_views

logger = logging.getLogger(__name__)

CONSISTENCIES = ("wiener", "ensemble", "none")
_SEARCH_SHARE, _DECODE_SHARE = 0.8, 0.15  # of the progress fraction; masks take the rest
_CONTEXT_ATTRIBUTES = ("context", "context_length", "max_context", "block_size", "max_len")

StagesFn = Callable[[str, int, int], None]
ReportFn = Callable[[str, int, int, float], None]  # stage, done, total, progress fraction


@dataclass(frozen=True)
class WaveformSeparation:
    """stems (N, L) float32 at the models' rate: the returned stems (they sum to the mixture
    with consistency "wiener" or "ensemble"); raw_stems (N, L): the chosen candidate's
    decoded sources (both None when the caller asked for the upload's stems only);
    upload_stems: with an upload, N arrays (L0, channels) float32 at its rate, cut by the
    same masks from every channel (they sum to the upload; with consistency "none", the raw
    sources resampled, the same on every channel); chosen: the most mixture-consistent
    candidate; candidate_consistency (C,): ‖y - Σ x̂_i‖² / ‖y‖² (lower is better);
    oracle_index: best-of-N by mean SI-SDR against references (an *oracle*, needs the
    references; None without them); oracle_si_sdr (C,) or None; tokens (C, N, T);
    log_scores (C,); fallback_steps (C,). Tokens decode at the level the models saw: divide
    what `decode_tokens` gives by input_gain."""

    stems: np.ndarray | None
    raw_stems: np.ndarray | None
    chosen: int
    candidate_consistency: np.ndarray
    oracle_index: int | None
    oracle_si_sdr: np.ndarray | None
    tokens: torch.Tensor
    log_scores: torch.Tensor
    fallback_steps: torch.Tensor
    input_gain: float = 1.0  # the mixture was scaled by it before encoding: decode / gain
    upload_stems: list[np.ndarray] | None = None

    def candidate_sources(self, codec: Codec, index: int, length: int) -> np.ndarray:
        """Candidate `index`'s raw decoded sources (N, L) float64 at the mixture's level: the
        chosen one's are kept (when they were made), any other is decoded (on the codec's
        device) and scaled back by input_gain."""
        if index == self.chosen and self.raw_stems is not None:
            return np.asarray(self.raw_stems, np.float64)
        return decode_tokens(codec, self.tokens[index][None], length)[0] / self.input_gain


def prior_context(priors: Sequence[Prior]) -> int | None:
    """The smallest context (tokens) any prior declares, on itself or its `config`."""
    contexts = []
    for prior in priors:
        for owner in (prior, getattr(prior, "config", None)):
            for name in _CONTEXT_ATTRIBUTES:
                value = getattr(owner, name, None)
                if isinstance(value, int) and value > 0:
                    contexts.append(value)
                    break
            else:
                continue
            break
    return min(contexts) if contexts else None


def _windows(
    priors: Sequence[Prior], total: int, window_tokens: int | None, prefix_tokens: int | None
) -> tuple[int, int]:
    context = prior_context(priors)
    if prefix_tokens is None:
        prefix_tokens = context // 4 if context else 0
    if window_tokens is None:
        window_tokens = context - prefix_tokens if context else max(total, 1)
    if window_tokens < 1 or prefix_tokens < 0:
        raise ValueError("window_tokens must be >= 1 and prefix_tokens >= 0")
    if context is not None and window_tokens + prefix_tokens > context:
        raise ValueError(
            f"window ({window_tokens}) + prefix ({prefix_tokens}) exceed the prior context "
            f"({context})"
        )
    return window_tokens, prefix_tokens


def separate_waveform(
    method: str,
    codec: Codec,
    priors: Sequence[Prior],
    likelihood: object,
    mixture: np.ndarray,
    *,
    num_candidates: int = 16,
    search: str = "sample",
    temperature: float = 1.0,
    top_k: int | None = None,
    likelihood_weight: float = 1.0,
    window_tokens: int | None = None,
    prefix_tokens: int | None = None,
    seed: int = 0,
    consistency: str = "ensemble",
    references: np.ndarray | None = None,
    progress: Callable[[float], None] | None = None,
    stages: StagesFn | None = None,
    codec_bf16: bool | None = None,
    stem_level_dbfs: float | None = None,
    upload: Upload | None = None,
    model_rate_stems: bool = True,
    block_frames: int = BLOCK_FRAMES,
    views: Sequence[MixtureView] = (),
    percussive: Sequence[bool] = (),
    mask_prior: float = MASK_EXPONENT,
    smoothing: Smoothing = SMOOTH_FRAMES,
    mask_gains: BandGains | None = None,
) -> WaveformSeparation:
    """Separate a mixture (L,) — the plain sum of the sources — into N stems (N, L).

    window_tokens defaults to the priors' context minus the prefix; prefix_tokens to a
    quarter of the context (0 and one window when no prior declares a context).
    consistency: "wiener" — Wiener masks from the chosen (most mixture-consistent)
    candidate; "ensemble" — masks from all candidates' consensus (`segment_power`; no references
    either: with search="sample" the candidates are posterior samples, whose consensus is
    steadier than any one of them; with "beam", the beams); "none" — the chosen candidate's
    raw decoded sources.
    codec_bf16 runs the codec's encoder and decoder under bf16 autocast (see `decode_tokens`; the
    nearest-code search stays fp32: 0.7% of tokens differ from fp32 on valid audio, the same
    tokens the bundle's count tables were built with); None: where bf16 is fast (CUDA, or a
    CPU with AVX512-BF16 — elsewhere CPU bf16 is emulated, slower).
    stem_level_dbfs: the models see the mixture scaled so that mixture / N sits at the level
    a mean of N stems of this level had in training (see `level_gain`; a bundle knows its
    own, `Bundle.stem_level_dbfs`). None: the mixture as uploaded.
    The decoded sources are scaled back, the masks are scale-free: the stems still sum to
    the mixture as given.
    upload: the mix as the user gave it (its channels at its rate; `mixture` is its mono
    mean at the models' rate): its stems come back in `upload_stems`. model_rate_stems=False
    skips `stems` and `raw_stems` (None) for a caller that only wants the upload's.
    Memory does not grow with duration beyond the mixture, the upload and the stems asked
    for: the mixture is encoded in chunks, and after the search the candidates are decoded,
    scored and turned into masks `block_frames` STFT frames at a time (the result does not
    depend on it), the masks cutting the stems as they come (see `blocks`, `MaskApplier`).
    views: band views of the mixture whose factors join the search (`views.py`; the
    bundle's for this source set, `Bundle.views`).
    percussive: which sources are made of onsets (drums): the masks then weigh each source's
    power by the mix's percussive or harmonic share raised to `mask_prior` (`hpss.MaskPrior`;
    () or 0: no prior).
    smoothing: the frames each source's power is averaged over before the masks, one
    window for all or one per source (`masks.smoothing_for`).
    mask_gains: each source's power times a gain per frequency band before the masks,
    fitted where the stems are known (`band_gains`; the bundle's for this method and sources).
    progress(fraction 0..1) follows the token steps (to 0.8), the candidates' decoding (to
    0.95) and the masks; stages(name, done, total) says where, before each progress call:
    "separating" (tokens), "decoding stems" (blocks), "masking" (blocks).
    """
    device = codec_device(codec)  # a GPU codec wants GPU input
    if codec_bf16 is None:
        codec_bf16 = bf16_is_fast(device)
    if consistency not in CONSISTENCIES:
        raise ValueError(f"consistency must be one of {CONSISTENCIES}; got {consistency!r}")
    mixture = np.asarray(mixture)
    if not np.issubdtype(mixture.dtype, np.floating):
        mixture = mixture.astype(np.float64)  # float32 stays: no whole-length float64 copy
    if mixture.ndim != 1 or mixture.size == 0:
        raise ValueError("mixture must be a non-empty 1-D array (L,)")
    n, length = len(priors), mixture.shape[0]
    if references is not None:
        references = np.asarray(references, dtype=np.float64)
        if references.shape != (n, length):
            raise ValueError(f"references must be (N, L) = ({n}, {length})")

    gain = level_gain(mixture, n, stem_level_dbfs)
    generator = torch.Generator().manual_seed(seed)
    padded = models_input(codec, mixture, gain, n)
    mixture_tokens, likelihood = observe_mixture(codec, likelihood, padded, codec_bf16)
    observed_views = observe_views(codec, views, padded, codec_bf16)
    del padded
    window, prefix_len = _windows(priors, mixture_tokens.shape[0], window_tokens, prefix_tokens)

    def report(name: str, done: int, total: int, fraction: float) -> None:
        if stages is not None:
            stages(name, done, total)
        if progress is not None:
            progress(fraction)

    search_window = functools.partial(
        separate,
        method,
        priors,
        likelihood,
        search=search,
        num_candidates=num_candidates,
        temperature=temperature,
        top_k=top_k,
        likelihood_weight=likelihood_weight,
        generator=generator,
    )
    rows = 1 if search == "beam" else num_candidates  # beams grow from one empty path
    tokens, scores, fallback = _search_windows(
        search_window, mixture_tokens, (window, prefix_len), (rows, n), report, observed_views
    )

    stft = StftGrid.covering(length, int(getattr(codec, "sample_rate", SAMPLE_RATE)))
    targets: dict[str, MaskApplier] = {}
    if consistency != "none":
        cut = mixture if model_rate_stems else None
        targets = _mask_targets(stft, n, cut, upload, block_frames)
    if percussive and len(percussive) != n:
        raise ValueError(f"percussive names {len(percussive)} sources, not {n}")
    if not isinstance(smoothing, int) and len(smoothing) != n:
        raise ValueError(f"smoothing gives {len(smoothing)} windows for {n} sources")
    prior = MaskPrior.for_sources(mixture, stft, percussive, mask_prior)
    frames = block_frames_for(codec, stft, block_frames)
    if mask_gains is not None and len(mask_gains.gains_db) != n:
        raise ValueError(f"mask_gains has {len(mask_gains.gains_db)} sources, not {n}")
    gains = mask_gains.weights(stft) if mask_gains is not None else None
    decoded = _Decoder(codec, gain, stft, frames, codec_bf16, prior, smoothing, gains)
    ranking = CandidateScores(mixture, tokens.shape[0], references)
    # One pass over every candidate: scores and, for "ensemble", the masks.
    only_block = decoded.run(tokens, report, ranking, targets if consistency == "ensemble" else {})
    chosen = ranking.chosen()
    if consistency == "wiener" and targets:  # the chosen candidate's own masks
        decoded.run(tokens[chosen : chosen + 1], report, None, targets)
    raw = None
    if model_rate_stems:  # a short input's candidates are all decoded already
        raw = only_block[chosen] if only_block is not None else decoded.whole(tokens[chosen])
    if consistency == "none":
        stems = raw
        upload_stems = _raw_upload_stems(decoded, tokens[chosen], raw, upload)
    else:
        stems = _single_channel(targets["models"].stems()) if model_rate_stems else None
        upload_stems = targets["upload"].stems() if upload is not None else None
    oracle_scores = ranking.oracle()
    if progress is not None:
        progress(1.0)
    return WaveformSeparation(
        stems=stems,
        raw_stems=raw,
        chosen=chosen,
        candidate_consistency=ranking.consistency(),
        oracle_index=int(np.argmax(oracle_scores)) if oracle_scores is not None else None,
        oracle_si_sdr=oracle_scores,
        tokens=tokens,
        log_scores=scores,
        fallback_steps=fallback,
        input_gain=gain,
        upload_stems=upload_stems,
    )


def _search_windows(
    search_window: Callable[..., Separation],
    mixture_tokens: torch.Tensor,
    windows: tuple[int, int],
    shape: tuple[int, int],
    report: ReportFn,
    views: ObservedViews | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The token search, window by window, each of the (rows, N) candidates continuing from
    its own last `prefix` tokens: tokens (C, N, T), log_scores (C,), fallback_steps (C,).
    search_window(mixture tokens, prefix=, prefix_scores=, progress=[, source_factors=])
    searches a window; views: the mixture's band views, whose factors each window gets for
    its own steps (None: no views)."""
    window, prefix_len = windows
    total = mixture_tokens.shape[0]
    tokens = torch.zeros(*shape, 0, dtype=torch.long)  # (C, N, t) chosen so far
    scores = torch.zeros(shape[0], dtype=torch.float64)
    fallback = torch.zeros(shape[0], dtype=torch.long)
    for start in range(0, total, window):

        def step(done: int, start: int = start) -> None:
            report("separating", start + done, total, _SEARCH_SHARE * (start + done) / total)

        prefix = tokens[:, :, max(0, start - prefix_len) : start]
        factors = {} if views is None else {"source_factors": views.factors(start, start + window)}
        result = search_window(
            mixture_tokens[start : start + window],
            prefix=prefix,
            prefix_scores=scores,
            progress=step,
            **factors,
        )
        if result.origins.dim() == 2:  # each source continues its own prefix row
            tokens = tokens[result.origins, torch.arange(shape[1])]
            fallback = fallback[result.origins].max(1).values + result.fallback_steps
        else:
            tokens = tokens[result.origins]
            fallback = fallback[result.origins] + result.fallback_steps
        tokens = torch.cat([tokens, result.tokens], 2)
        scores = result.log_scores if result.source_scores is None else result.source_scores
    if int(fallback.sum()):
        logger.info("%d candidate-steps fell back to the priors alone", int(fallback.sum()))
    return tokens, scores if scores.dim() == 1 else scores.sum(1), fallback


def _mask_targets(
    stft: StftGrid, n: int, mixture: np.ndarray | None, upload: Upload | None, block_frames: int
) -> dict[str, MaskApplier]:
    """What the masks cut: the mixture at the models' rate ("models", for `stems`) and the
    upload as given ("upload"), each when there."""
    frames = min(block_frames, UPLOAD_BLOCK_FRAMES)  # the upload's transforms: see masks
    targets: dict[str, MaskApplier] = {}
    if mixture is not None:
        targets["models"] = MaskApplier(
            mixture[None], stft.sample_rate, stft, n, block_frames=frames
        )
    if upload is not None:
        targets["upload"] = MaskApplier(
            upload.audio, upload.sample_rate, stft, n, block_frames=frames
        )
    return targets


@dataclass(frozen=True)
class _Decoder:
    """Decodes candidates' tokens for the stages after the search, at the mixture's level."""

    codec: Codec
    gain: float
    stft: StftGrid
    block_frames: int
    bf16: bool
    prior: MaskPrior | None = None
    smoothing: Smoothing = SMOOTH_FRAMES
    gains: torch.Tensor | None = None  # (N, F, 1) on each source's power (band_gains)

    def run(
        self,
        tokens: torch.Tensor,
        report: ReportFn,
        ranking: CandidateScores | None,
        targets: dict[str, MaskApplier],
    ) -> np.ndarray | None:
        """One pass over blocks of time: candidates (C, N, T) decoded, scored into
        `ranking`, and their consensus power's masks handed to `targets`. The first pass (with
        a ranking) reports its blocks as "decoding stems" up to 0.95; a later one (masks
        only) as "masking", up to 1. Returns the candidates' sources (C, N, L) when one
        block covers the signal (None otherwise: long audio is never held whole)."""
        blocks = plan_blocks(self.stft, self.block_frames)
        share = (_SEARCH_SHARE, _DECODE_SHARE) if ranking is not None else (0.95, 0.05)
        smoother = TimeSmoother(self.smoothing)
        masked = 0  # grid frames whose masks are made
        for b, block in enumerate(blocks):
            fraction = share[0] + share[1] * b / len(blocks)
            if ranking is not None:
                report("decoding stems", b, len(blocks), fraction)
            audio = decode_block(self.codec, tokens, self.gain, block, self.stft.length, self.bf16)
            if ranking is not None:
                ranking.add(block, audio)
            if targets:
                report("masking", b, len(blocks), fraction)
                power = smoother.add(segment_power(audio, self.stft), last=b == len(blocks) - 1)
                if self.prior is not None:
                    power = power * self.prior.weights(masked, masked + power.shape[2])
                masked += power.shape[2]
                masks = masks_from_power(power, self.stft, self.gains)
                for target in targets.values():
                    target.add(masks)
        if len(blocks) > 1:
            return None
        own = slice(blocks[0].own_lo - blocks[0].lo, blocks[0].own_hi - blocks[0].lo)
        return audio[:, :, own]

    def whole(self, tokens: torch.Tensor) -> np.ndarray:
        """One candidate's sources (N, T) -> (N, L) float32 (decoded in chunks)."""
        return decode_rows(self.codec, tokens, self.stft.length, self.bf16) / np.float32(self.gain)


def _raw_upload_stems(
    decoded: _Decoder, tokens: torch.Tensor, raw: np.ndarray | None, upload: Upload | None
) -> list[np.ndarray] | None:
    """Consistency "none" at the upload's rate: the chosen candidate's sources (N, T)
    resampled, the same on every channel (one source decoded at a time when `raw` was not
    made)."""
    if upload is None:
        return None
    channels, length = upload.audio.shape
    out = []
    for i in range(tokens.shape[0]):
        source = raw[i] if raw is not None else decoded.whole(tokens[i : i + 1])[0]
        stem = resample(source, decoded.stft.sample_rate, upload.sample_rate)[:length]
        full = np.zeros((length, channels), dtype=np.float32)
        full[: len(stem)] = stem[:, None]
        out.append(full)
    return out


def _single_channel(stems: list[np.ndarray]) -> np.ndarray:
    """N arrays (L, 1) -> (N, L)."""
    return np.stack([stem[:, 0] for stem in stems])
