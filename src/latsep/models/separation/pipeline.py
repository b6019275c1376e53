"""Long audio: windows of tokens, candidates ranked by mixture consistency, Wiener stems.

The worker calls `separate_waveform`. The models see the *mean* of the sources: the codec
encodes mixture / N; each source's tokens decode to that source at its own level, so the
decoded sources should sum to the uploaded mixture y. Windows follow the priors' context;
each candidate continues from its own previous tokens (the prefix), so sources stay
continuous, and the whole token sequences are decoded once at the end (no seams).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from latsep.models.audio import SAMPLE_RATE
from latsep.models.data.levels import active_rms
from latsep.models.prior.protocol import Prior
from latsep.models.separation.codec import Codec
from latsep.models.separation.consistency import si_sdr
from latsep.models.separation.engine import separate
from latsep.models.separation.masks import (
    MaskGrid,
    PowerAccumulator,
    apply_masks,
    estimate_masks,
)

logger = logging.getLogger(__name__)

CONSISTENCIES = ("wiener", "ensemble", "none")
# The level the models were trained around, per stem: the corpus renders stems at −26 to −16
# dBFS active RMS (±6 dB more in training); the median of its valid chunks is −22.5 dBFS,
# so the mean of n sources sits near −22.5 − 10·log10(n) (−25.5 dBFS measured for 2 sources,
# −27.0 for 3). Uploads come at any level; tokens depend on it.
NOMINAL_STEM_DBFS = -22.5
_EPS = 1e-12
_SEARCH_SHARE, _DECODE_SHARE = 0.8, 0.15  # of the progress fraction; masks take the rest
_MAX_LEVEL_GAIN_DB = 40.0  # never lift near-silence into the models' range
_CONTEXT_ATTRIBUTES = ("context", "context_length", "max_context", "block_size", "max_len")
_DECODE_ROWS = 8  # rows per decoder call: bounds memory on long clips
# Tokens per decoder call along time (≈6 s at hop 64), plus the decoder's context each side.
DECODE_CHUNK_TOKENS = 2048


@dataclass(frozen=True)
class WaveformSeparation:
    """stems (N, L) float32: the returned stems (they sum to the mixture with consistency
    "wiener" or "ensemble"); raw_stems (N, L): the chosen candidate's decoded sources;
    chosen: its index, the most mixture-consistent candidate; candidate_consistency (C,):
    ‖y - Σ x̂_i‖² / ‖y‖² (lower is better); oracle_index: best-of-N by mean SI-SDR against
    references (an *oracle*, needs the references; None without them); oracle_si_sdr (C,)
    or None; tokens (C, N, T); log_scores (C,); fallback_steps (C,). Tokens decode at the
    level the models saw: divide what `decode_tokens` gives by input_gain. masks: the soft
    masks the stems came from (None with consistency "none"), for `apply_masks` to the
    upload at its own rate and channels."""

    stems: np.ndarray
    raw_stems: np.ndarray
    chosen: int
    candidate_consistency: np.ndarray
    oracle_index: int | None
    oracle_si_sdr: np.ndarray | None
    tokens: torch.Tensor
    log_scores: torch.Tensor
    fallback_steps: torch.Tensor
    input_gain: float = 1.0  # the mixture was scaled by it before encoding: decode / gain
    masks: MaskGrid | None = None

    def candidate_sources(self, codec: Codec, index: int, length: int) -> np.ndarray:
        """Candidate `index`'s raw decoded sources (N, L) float64 at the mixture's level: the
        chosen one's are kept, any other is decoded (on the codec's device) and scaled back
        by input_gain."""
        if index == self.chosen:
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


def codec_device(codec: Codec) -> torch.device:
    """Where the codec's weights live; a codec without a `device` runs on the CPU."""
    return torch.device(getattr(codec, "device", "cpu"))


def bf16_is_fast(device: torch.device) -> bool:
    if device.type == "cuda":
        return True
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private; absent → no
    return device.type == "cpu" and bool(probe and probe())


def decode_tokens(
    codec: Codec, tokens: torch.Tensor, length: int, bf16: bool = False
) -> np.ndarray:
    """(C, N, T) tokens -> (C, N, L) float64 audio, trimmed or zero-padded to `length`; the
    tokens may live anywhere (they are moved to the codec's device). Long rows decode in
    overlapping time chunks (see `decode_rows`).

    bf16: run the decoder under bf16 autocast on the codec's device (measured on a 2-core
    CPU with AVX512-BF16: 2.2× faster; on the trained default plain codec, 6 valid chunks per
    stem, bf16 output is 46–50 dB from fp32 and its SDR within 0.002 dB of fp32's).
    """
    c, n, t = tokens.shape
    flat = tokens.reshape(c * n, t)
    out = np.zeros((c * n, length), dtype=np.float64)
    for start in range(0, c * n, _DECODE_ROWS):
        out[start : start + _DECODE_ROWS] = decode_rows(
            codec, flat[start : start + _DECODE_ROWS], length, bf16
        )
    return out.reshape(c, n, length)


def iter_candidates(
    codec: Codec, tokens: torch.Tensor, length: int, bf16: bool = False
) -> Iterator[np.ndarray]:
    """Each candidate's decoded sources in turn, (N, L) float32: (C, N, T) tokens never
    become (C, N, L) audio at once (a few candidates share a decoder call)."""
    c, n, _ = tokens.shape
    per_call = max(1, _DECODE_ROWS // n)
    for start in range(0, c, per_call):
        group = tokens[start : start + per_call]  # (c', N, T)
        audio = decode_rows(codec, group.reshape(-1, group.shape[-1]), length, bf16)
        yield from audio.reshape(group.shape[0], n, length)


def decode_rows(
    codec: Codec,
    rows: torch.Tensor,
    length: int,
    bf16: bool = False,
    chunk_tokens: int = DECODE_CHUNK_TOKENS,
) -> np.ndarray:
    """(B, T) tokens -> (B, L) float32 audio, trimmed or zero-padded to `length`.

    A codec that declares its decoder's receptive field (`receptive_tokens`, each side) is
    run on chunks of `chunk_tokens` with that much context on each side, of which only the
    middle is kept: for a convolutional decoder the result is the whole decode's (no seams),
    and memory is bounded by the chunk, not the duration. Others decode whole rows.
    """
    b, t = rows.shape
    out = np.zeros((b, length), dtype=np.float32)
    device = codec_device(codec)
    context = getattr(codec, "receptive_tokens", None)
    hop = int(getattr(codec, "hop_length", 0))
    if not isinstance(context, int) or not hop or t <= chunk_tokens + 2 * context:
        spans = [(0, t, 0, t)]  # (token span kept, token span decoded)
    else:
        spans = [
            (
                start,
                min(t, start + chunk_tokens),
                max(0, start - context),
                min(t, start + chunk_tokens + context),
            )
            for start in range(0, t, chunk_tokens)
        ]
    # No autocast context at all in fp32: it refuses device types it does not know.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    with torch.inference_mode(), autocast:
        for keep_lo, keep_hi, lo, hi in spans:
            if keep_lo * hop >= length:
                break
            decoded = codec.decode(rows[:, lo:hi].to(device)).detach().float().cpu()
            audio = decoded.reshape(b, -1)
            if (lo, hi) != (0, t):  # a chunk: keep the middle
                audio = audio[:, (keep_lo - lo) * hop : (keep_hi - lo) * hop]
            first = keep_lo * hop
            audio = audio[:, : max(0, length - first)].numpy()
            out[:, first : first + audio.shape[1]] = audio
    return out


def level_gain(mixture: np.ndarray, num_sources: int, stem_dbfs: float | None) -> float:
    """The gain that brings the mean of the sources (mixture / n) to the nominal level of a
    mean of n stems at `stem_dbfs` (active RMS); 1 when None or the mixture is silent."""
    if stem_dbfs is None:
        return 1.0
    level = active_rms(mixture / num_sources)
    if level <= 0.0:
        return 1.0
    target_db = stem_dbfs - 10.0 * np.log10(num_sources)
    gain_db = float(
        np.clip(target_db - 20.0 * np.log10(level), -_MAX_LEVEL_GAIN_DB, _MAX_LEVEL_GAIN_DB)
    )
    return float(10.0 ** (gain_db / 20.0))


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
    stages: Callable[[str, int, int], None] | None = None,
    codec_bf16: bool | None = None,
    stem_level_dbfs: float | None = None,
) -> WaveformSeparation:
    """Separate a mixture (L,) — the plain sum of the sources — into N stems (N, L).

    window_tokens defaults to the priors' context minus the prefix; prefix_tokens to a
    quarter of the context (0 and one window when no prior declares a context).
    consistency: "wiener" — Wiener masks from the chosen (most mixture-consistent)
    candidate; "ensemble" — masks from all candidates' consensus (`PowerAccumulator`; no references
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
    progress(fraction 0..1) follows the token steps (to 0.8), the candidates' decoding (to
    0.95) and the masks; stages(name, done, total) says where, before each progress call:
    "separating" (tokens), "decoding stems" (candidates), "masking".
    """
    device = codec_device(codec)  # a GPU codec wants GPU input
    if codec_bf16 is None:
        codec_bf16 = bf16_is_fast(device)
    if consistency not in CONSISTENCIES:
        raise ValueError(f"consistency must be one of {CONSISTENCIES}; got {consistency!r}")
    mixture = np.asarray(mixture, dtype=np.float64)
    if mixture.ndim != 1 or mixture.size == 0:
        raise ValueError("mixture must be a non-empty 1-D array (L,)")
    n, length = len(priors), mixture.shape[0]
    if references is not None:
        references = np.asarray(references, dtype=np.float64)
        if references.shape != (n, length):
            raise ValueError(f"references must be (N, L) = ({n}, {length})")

    gain = level_gain(mixture, n, stem_level_dbfs)
    hop = int(codec.hop_length)
    padded = np.zeros(-(-length // hop) * hop, dtype=np.float32)
    padded[:length] = gain * mixture / n  # the models see the mean of the sources
    with torch.inference_mode():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=codec_bf16):
            mixture_tokens = codec.encode(torch.from_numpy(padded)[None].to(device))
        mixture_tokens = mixture_tokens.reshape(-1).long().cpu()
    total = mixture_tokens.shape[0]
    window, prefix_len = _windows(priors, total, window_tokens, prefix_tokens)
    generator = torch.Generator().manual_seed(seed)

    rows = num_candidates if search == "sample" else 1
    tokens = torch.zeros(rows, n, 0, dtype=torch.long)  # (C, N, t) chosen so far
    scores = torch.zeros(rows, dtype=torch.float64)
    fallback = torch.zeros(rows, dtype=torch.long)
    for start in range(0, total, window):

        def report(done: int, start: int = start) -> None:
            if stages is not None:
                stages("separating", start + done, total)
            if progress is not None:
                progress(_SEARCH_SHARE * (start + done) / total)

        result = separate(
            method,
            priors,
            likelihood,
            mixture_tokens[start : start + window],
            search=search,
            num_candidates=num_candidates,
            temperature=temperature,
            top_k=top_k,
            likelihood_weight=likelihood_weight,
            generator=generator,
            prefix=tokens[:, :, max(0, start - prefix_len) : start],
            prefix_scores=scores,
            progress=report,
        )
        tokens = torch.cat([tokens[result.origins], result.tokens], 2)
        scores = result.log_scores
        fallback = fallback[result.origins] + result.fallback_steps
    if int(fallback.sum()):
        logger.info("%d candidate-steps fell back to the priors alone", int(fallback.sum()))

    # One candidate at a time: its mixture error, its oracle score, its power for the
    # ensemble's masks; only the most consistent one's sources are kept.
    rate = int(getattr(codec, "sample_rate", SAMPLE_RATE))
    ensemble = PowerAccumulator(rate) if consistency == "ensemble" else None
    errors = np.empty(tokens.shape[0], dtype=np.float64)  # (C,)
    oracle_scores = np.empty_like(errors) if references is not None else None
    mixture_energy = float((mixture**2).sum()) + _EPS
    chosen, raw = 0, np.zeros((n, length), dtype=np.float32)
    num_rows = tokens.shape[0]
    for c, decoded in enumerate(iter_candidates(codec, tokens, length, codec_bf16)):
        if stages is not None:
            stages("decoding stems", c, num_rows)
        if progress is not None:
            progress(_SEARCH_SHARE + _DECODE_SHARE * c / num_rows)
        estimate = decoded / np.float32(gain)  # (N, L) float32, at the upload's level
        residual = mixture - estimate.sum(0, dtype=np.float64)  # (L,)
        errors[c] = float((residual**2).sum()) / mixture_energy
        if oracle_scores is not None:
            oracle_scores[c] = float(si_sdr(references, estimate.astype(np.float64)).mean())
        if ensemble is not None:
            ensemble.add(estimate)
        if c == 0 or errors[c] < errors[chosen]:  # the first of equals, as argmin
            chosen, raw = c, estimate
    oracle_index = int(np.argmax(oracle_scores)) if oracle_scores is not None else None
    masks = None
    if stages is not None:
        stages("masking", 0, 1)
    if progress is not None:
        progress(_SEARCH_SHARE + _DECODE_SHARE)
    if consistency in ("wiener", "ensemble"):
        # "ensemble": masks from every candidate's power; "wiener": the chosen one's.
        masks = ensemble.grid() if ensemble is not None else estimate_masks(raw, rate)
        stems = apply_masks(masks, mixture[None], rate)[:, 0]  # (N, L)
    else:
        stems = raw
    if progress is not None:
        progress(1.0)
    return WaveformSeparation(
        stems=stems,
        raw_stems=raw,
        chosen=chosen,
        candidate_consistency=errors,
        oracle_index=oracle_index,
        oracle_si_sdr=oracle_scores,
        tokens=tokens,
        log_scores=scores,
        fallback_steps=fallback,
        input_gain=gain,
        masks=masks,
    )
