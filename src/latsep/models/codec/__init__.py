"""1-D convolutional VQ-VAE codec (plain and LQ variants share one class)."""

from latsep.models.codec.config import SAMPLE_RATE, CodecConfig
from latsep.models.codec.losses import (
    linearization_loss,
    multi_resolution_stft_loss,
    normalized_l2,
)
from latsep.models.codec.model import Codec, CodecOutput
from latsep.models.codec.quantizer import EMAQuantizer, Quantized

__all__ = [
    "SAMPLE_RATE",
    "Codec",
    "CodecConfig",
    "CodecOutput",
    "EMAQuantizer",
    "Quantized",
    "linearization_loss",
    "multi_resolution_stft_loss",
    "normalized_l2",
]
