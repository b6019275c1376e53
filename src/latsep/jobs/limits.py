"""How much audio a job may decode: checked by the API on upload and by the worker again
before it decodes, from the file's header, so neither ever allocates an unbounded buffer.

Bytes and duration alone do not bound the cost of decoding: a 344 kB FLAC of 60 s at
655,350 Hz on 8 channels decodes to 1.3 GB of float32. The budget is on what decoding
produces (frames × channels), with channels and sample rate bounded too.
"""

from __future__ import annotations

from dataclasses import dataclass

from latsep.audio.errors import AudioError
from latsep.settings import Settings


class AudioTooLarge(AudioError):
    """Decoding the file would exceed the budget (channels, sample rate or samples)."""


@dataclass(frozen=True)
class DecodeLimits:
    max_channels: int
    max_sample_rate: int
    max_samples: int  # frames × channels, decoded

    @classmethod
    def from_settings(cls, settings: Settings) -> DecodeLimits:
        return cls(settings.max_channels, settings.max_sample_rate, settings.max_decoded_samples)

    def check_format(self, channels: int, sample_rate: int) -> None:
        if channels > self.max_channels:
            raise AudioTooLarge(
                f"the audio has {channels} channels; at most {self.max_channels} are accepted "
                "(mix it down first)"
            )
        if sample_rate > self.max_sample_rate:
            raise AudioTooLarge(
                f"the audio is sampled at {sample_rate} Hz; at most {self.max_sample_rate} Hz "
                "is accepted (resample it first)"
            )

    def check_samples(self, frames: int, channels: int, sample_rate: int) -> None:
        """Raise when `frames` frames of `channels` channels exceed the budget."""
        if frames * channels > self.max_samples:
            seconds = self.max_samples / max(1, channels) / max(1, sample_rate)
            raise AudioTooLarge(
                f"the audio decodes to more than {self.max_samples} samples (at {sample_rate} Hz "
                f"on {channels} channel(s) the limit is {seconds:.1f} s); send fewer channels, "
                "a lower sample rate or a shorter excerpt"
            )
