"""What the models observe of a mixture: the mean of its sources, brought to the level they
were trained around, as tokens, or as continuous latents for a likelihood that scores them.
"""

from __future__ import annotations

import numpy as np
import torch

from latsep.audio.levels import active_rms
from latsep.models.separation.chunks import encode_samples, encode_with_latents
from latsep.models.separation.codec import Codec

# The level the models were trained around, per stem: the corpus renders stems at −26 to −16
# dBFS active RMS (±6 dB more in training); the median of its valid chunks is −22.5 dBFS,
# so the mean of n sources sits near −22.5 − 10·log10(n) (−25.5 dBFS measured for 2 sources,
# −27.0 for 3). Uploads come at any level; tokens depend on it.
NOMINAL_STEM_DBFS = -22.5
_MAX_LEVEL_GAIN_DB = 40.0  # never lift near-silence into the models' range


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


def models_input(codec: Codec, mixture: np.ndarray, gain: float, n: int) -> np.ndarray:
    """gain · mixture / n (the models see the mean of the sources), zero-padded to a
    multiple of the hop, float32: what the codec encodes."""
    hop = int(codec.hop_length)
    padded = np.zeros(-(-len(mixture) // hop) * hop, dtype=np.float32)
    padded[: len(mixture)] = gain * mixture / n
    return padded


def observe_mixture(
    codec: Codec, likelihood: object, padded: np.ndarray, bf16: bool
) -> tuple[torch.Tensor, object]:
    """What the likelihood observes of the models' input (`models_input`): its tokens (T,),
    and the likelihood as given; or, for one that also scores the continuous latent (lqvae
    or hybrid with a `latent_sigma`), the step indices 0 .. T-1 and the likelihood bound to
    this mixture's tokens and latents."""
    if getattr(likelihood, "latent_sigma", None) is None:
        return encode_samples(codec, padded, bf16), likelihood
    tokens, latents = encode_with_latents(codec, padded, bf16)
    observed = likelihood.observing(tokens, latents)  # type: ignore[attr-defined]
    return torch.arange(latents.shape[0]), observed
