"""Typed errors for audio a user or a file supplied. Each maps to one HTTP status upstream."""

from __future__ import annotations


class AudioError(ValueError):
    """Base class: the audio cannot be used. The message says why, in words a user can act on."""


class UndecodableAudio(AudioError):
    """The bytes are not audio libsndfile can decode (garbage, truncated, unknown format)."""


class EmptyAudio(AudioError):
    """The file decodes to zero samples."""


class SilentAudio(AudioError):
    """Every sample is zero: there is nothing to separate."""


class NonFiniteAudio(AudioError):
    """The signal holds NaN or infinite samples."""


class AudioTooLong(AudioError):
    """The decoded duration exceeds the configured limit."""
