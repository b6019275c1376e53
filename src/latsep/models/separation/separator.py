"""A Separator: one (bundle, method, sources) made ready once, then any number of mixtures.

The worker (and through it `latsep separate`), the benchmark and the study scripts separate
through it instead of each assembling codec + priors + likelihood + keyword arguments: the
bundle's level, the likelihood's overrides (backoff, lqvae's latent σ) and the oracle
candidate's stems are decided here once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from latsep.audio.io import Upload
from latsep.methods import SearchSettings
from latsep.models.separation.consistency import wiener_stems
from latsep.models.separation.hpss import PERCUSSIVE_SOURCES
from latsep.models.separation.masks import SMOOTH_FRAMES, Smoothing, smoothing_for
from latsep.models.separation.pipeline import StagesFn, WaveformSeparation, separate_waveform

SeparateFn = Callable[..., WaveformSeparation]


class Separator:
    """`method` over `sources` (in this order: stems come back in it) with one bundle's models.

    backoff / latent_sigma override the bundle's likelihood settings (`Bundle.likelihood`);
    level_norm False encodes mixtures as they come instead of at the bundle's training level,
    views False leaves out the band views the bundle counted for these sources, hpss_masks
    False the masks' prior that drums hold the mix's onsets (`hpss.MaskPrior`),
    source_smoothing False one time average (5 frames) for every source's power instead of a
    long one for steady sources and a short one for drums (`masks.smoothing_for`), mask_gains
    False no gains by frequency band on the power (`band_gains`, the bundle's; also off with
    either of the two before, whose power they were fitted on) (ablations);
    `separate` is the waveform separation to call (tests pass a fake).
    """

    def __init__(
        self,
        bundle: Any,
        method: str,
        sources: Sequence[str],
        *,
        backoff: float | None = None,
        latent_sigma: float | None = None,
        level_norm: bool = True,
        views: bool = True,
        hpss_masks: bool = True,
        source_smoothing: bool = True,
        mask_gains: bool = True,
        separate: SeparateFn = separate_waveform,
    ) -> None:
        self.method = method
        self.sources = tuple(sources)
        self.codec = bundle.codec
        self.priors = [bundle.prior(s) for s in self.sources]
        self.likelihood = bundle.likelihood(
            method, self.sources, backoff=backoff, latent_sigma=latent_sigma
        )
        self.sample_rate = int(bundle.sample_rate)
        self.stem_level_dbfs = bundle.stem_level_dbfs if level_norm else None
        self.views = bundle.views(method, self.sources) if views else ()
        # the masks' prior that drums hold the mix's onsets, the other stems its steady tones
        percussive = tuple(s in PERCUSSIVE_SOURCES for s in self.sources)
        self.percussive = percussive if hpss_masks else ()
        # steady sources' power averaged over longer than drums'
        self.smoothing: Smoothing = smoothing_for(percussive) if source_smoothing else SMOOTH_FRAMES
        # each source's power times a gain per band, fitted on the valid split (or None);
        # they were fitted on the power the prior and the per-source averages make, so the
        # ablations of those leave them out too
        fitted_power = hpss_masks and source_smoothing
        self.mask_gains = (
            bundle.mask_gains(method, self.sources) if mask_gains and fitted_power else None
        )
        self._separate = separate

    def separate(
        self,
        mixture: np.ndarray,
        settings: SearchSettings,
        *,
        seed: int = 0,
        consistency: str = "ensemble",
        references: np.ndarray | None = None,
        upload: Upload | None = None,
        model_rate_stems: bool = True,
        progress: Callable[[float], None] | None = None,
        stages: StagesFn | None = None,
    ) -> WaveformSeparation:
        """Separate `mixture` (L,) at the bundle's rate, the plain sum of the sources; see
        `separate_waveform` for the other arguments and the result."""
        return self._separate(
            self.method,
            self.codec,
            self.priors,
            self.likelihood,
            mixture,
            **settings.keywords(),
            seed=seed,
            consistency=consistency,
            references=references,
            progress=progress,
            stages=stages,
            stem_level_dbfs=self.stem_level_dbfs,
            upload=upload,
            model_rate_stems=model_rate_stems,
            **({"views": self.views} if self.views else {}),
            **({"percussive": self.percussive} if self.percussive else {}),
            **({"smoothing": self.smoothing} if self.smoothing != SMOOTH_FRAMES else {}),
            **({"mask_gains": self.mask_gains} if self.mask_gains is not None else {}),
        )

    def candidate_stems(
        self,
        separation: WaveformSeparation,
        index: int,
        mixture: np.ndarray,
        *,
        masks: bool,
    ) -> np.ndarray:
        """Candidate `index`'s stems (N, L) float64: its decoded sources (masks False), or
        the mixture cut by its own Wiener masks (masks True: what the chosen candidate's
        stems are with consistency "wiener", so a single candidate compares with them)."""
        raw = separation.candidate_sources(self.codec, index, len(mixture))
        if not masks:
            return raw
        stems = wiener_stems(
            np.asarray(mixture, np.float64),
            raw,
            percussive=self.percussive,
            smoothing=self.smoothing,
            mask_gains=self.mask_gains,
        )
        return np.asarray(stems, np.float64)
