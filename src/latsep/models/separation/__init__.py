"""The separation engine: per-step exact samplers, beam search, long-audio pipeline."""

from latsep.models.separation.codec import Codec
from latsep.models.separation.consistency import mixture_error, si_sdr, wiener_stems
from latsep.models.separation.engine import METHODS, PAIR_METHODS, separate
from latsep.models.separation.pipeline import (
    WaveformSeparation,
    decode_tokens,
    prior_context,
    separate_waveform,
)
from latsep.models.separation.result import Separation

__all__ = [
    "METHODS",
    "PAIR_METHODS",
    "Codec",
    "Separation",
    "WaveformSeparation",
    "decode_tokens",
    "mixture_error",
    "prior_context",
    "separate",
    "separate_waveform",
    "si_sdr",
    "wiener_stems",
]
