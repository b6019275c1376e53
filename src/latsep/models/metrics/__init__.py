"""Reconstruction and separation metrics (BSSEval v4 SDR, SI-SDR, SNR)."""

from latsep.models.metrics.sdr import bss_sdr, db_mean, si_sdr, snr

__all__ = ["bss_sdr", "db_mean", "si_sdr", "snr"]
