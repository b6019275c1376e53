"""Audio I/O: decode, mono, resample to 22,050 Hz, write; typed errors for bad input."""

from latsep.audio.errors import (
    AudioError,
    AudioTooLong,
    EmptyAudio,
    NonFiniteAudio,
    SilentAudio,
    UndecodableAudio,
)
from latsep.audio.io import (
    SAMPLE_RATE,
    Upload,
    check_signal,
    encode_audio,
    load_audio,
    load_upload,
    output_subtype,
    probe_duration,
    resample,
    to_mono,
    write_audio,
)

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "AudioTooLong",
    "EmptyAudio",
    "NonFiniteAudio",
    "SilentAudio",
    "UndecodableAudio",
    "Upload",
    "check_signal",
    "encode_audio",
    "load_audio",
    "load_upload",
    "output_subtype",
    "probe_duration",
    "resample",
    "to_mono",
    "write_audio",
]
