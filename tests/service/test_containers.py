"""Header-declared data sizes of uncompressed containers (service/containers.py)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from service_support import wav_bytes

from latsep.service.containers import missing_data_bytes

FORMATS = [("WAV", "PCM_16"), ("RF64", "PCM_16"), ("AIFF", "PCM_16"), ("AU", "PCM_16")]
FORMATS += [("W64", "PCM_16"), ("WAVEX", "PCM_24"), ("FLAC", "PCM_16")]


@pytest.mark.parametrize(("fmt", "subtype"), FORMATS)
def test_a_whole_file_misses_nothing(fmt: str, subtype: str) -> None:
    audio = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    assert missing_data_bytes(wav_bytes(audio, fmt=fmt, subtype=subtype)) == 0


@pytest.mark.parametrize(("fmt", "subtype"), FORMATS[:-1])
def test_a_cut_file_misses_what_was_cut(fmt: str, subtype: str) -> None:
    whole = wav_bytes(np.linspace(-0.5, 0.5, 1000, dtype=np.float32), fmt=fmt, subtype=subtype)
    assert missing_data_bytes(whole[:-101]) == 101


def test_streamed_wav_of_unknown_size_is_not_truncated() -> None:
    whole = wav_bytes(np.linspace(-0.5, 0.5, 1000, dtype=np.float32))
    at = whole.index(b"data")
    streamed = whole[: at + 4] + struct.pack("<I", 0xFFFFFFFF) + whole[at + 8 : -100]
    assert missing_data_bytes(streamed) == 0


@pytest.mark.parametrize("junk", [b"", b"RIFF", b"RIFF\xff\xff\xff\xffWAVEdata", b".snd\0\0"])
def test_junk_headers_do_not_raise(junk: bytes) -> None:
    assert missing_data_bytes(junk) >= 0
