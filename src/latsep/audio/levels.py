"""Stem levels: the active RMS of a stem, setting it to a target, and 16-bit conversion."""

from __future__ import annotations

import numpy as np

PEAK_LIMIT = 0.98  # keep 16-bit FLAC stems below full scale
_FRAME = 2048


class LevelError(ValueError):
    """A stem is silent, so it has no level to set."""


def active_rms(audio: np.ndarray, floor_db: float = -40.0) -> float:
    """RMS over the frames that sound: frames within `floor_db` of the loudest frame.

    A bass line with long rests and a busy one then get the same level when played at the
    same loudness, which a whole-file RMS would not give them.
    """
    frames = audio[: audio.shape[0] // _FRAME * _FRAME].reshape(-1, _FRAME)  # (F, frame)
    if frames.shape[0] == 0:
        frames = audio[None, :]
    power = (frames.astype(np.float64) ** 2).mean(axis=1)
    if power.max() <= 0.0:
        return 0.0
    active = power >= power.max() * 10.0 ** (floor_db / 10.0)
    return float(np.sqrt(power[active].mean()))


def set_level(audio: np.ndarray, target_db: float) -> tuple[np.ndarray, float]:
    """Scale so the active RMS is `target_db` dBFS, then down if the peak would pass
    PEAK_LIMIT. Returns the scaled audio and the gain applied in dB."""
    level = active_rms(audio)
    if level <= 0.0:
        raise LevelError("cannot set the level of a silent stem")
    gain = 10.0 ** (target_db / 20.0) / level
    peak = float(np.abs(audio).max()) * gain
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    return (audio * gain).astype(np.float32), float(20.0 * np.log10(gain))


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """float (L,) in [-1, 1] -> int16 (L,), rounded here so the FLAC bytes do not depend on
    libsndfile's own float conversion."""
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
