"""The separation engine: per-step exact samplers, beam search, long-audio pipeline."""

from latsep.models.separation.chunks import decode_rows, decode_span, decode_tokens
from latsep.models.separation.codec import Codec
from latsep.models.separation.consistency import mixture_error, si_sdr, wiener_stems
from latsep.models.separation.engine import LIKELIHOODS, separate
from latsep.models.separation.masks import (
    MaskApplier,
    MaskGrid,
    StftGrid,
    apply_masks,
    estimate_masks,
)
from latsep.models.separation.pipeline import (
    WaveformSeparation,
    prior_context,
    separate_waveform,
)
from latsep.models.separation.result import Separation
from latsep.models.separation.separator import Separator

__all__ = [
    "LIKELIHOODS",
    "Codec",
    "MaskApplier",
    "MaskGrid",
    "Separation",
    "Separator",
    "StftGrid",
    "WaveformSeparation",
    "apply_masks",
    "decode_rows",
    "decode_span",
    "decode_tokens",
    "estimate_masks",
    "mixture_error",
    "prior_context",
    "separate",
    "separate_waveform",
    "si_sdr",
    "wiener_stems",
]
