"""Truncation of uncompressed audio containers, read from their headers.

libsndfile derives the frame count of a WAV, AIFF, AU or W64 file from the bytes actually
present, so a file cut short decodes as a shorter, "valid" recording: comparing decoded
frames with the declared ones never fires. The header still says how many bytes its sample
data should hold; `missing_data_bytes` compares that with the bytes that follow it.
Compressed formats (FLAC, Ogg, MP3) are left to the decoder, which reports their damage.
"""

from __future__ import annotations

import struct

# Sizes that mean "unknown" (a stream written before its length was known), not truncation.
_UNKNOWN_32 = (0, 0xFFFFFFFF)
_W64_RIFF = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"
_W64_DATA = b"data\xf3\xac\xd3\x11\x8c\xd1\x00\xc0\x4f\x8e\xdb\x8a"


def missing_data_bytes(data: bytes) -> int:
    """How many bytes of sample data the header announces beyond the end of `data`; 0 when
    the data is complete, its size unknown, or the container not one of those above."""
    head = data[:4]
    if head in (b"RIFF", b"RIFX", b"RF64"):
        return _riff(data)
    if head == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
        return _aiff(data)
    if head == b".snd":
        return _au(data)
    if data[:16] == _W64_RIFF:
        return _w64(data)
    return 0


def _riff(data: bytes) -> int:
    """RIFF/RIFX WAV: chunks of (id, 32-bit size, payload padded to even); RF64 keeps the
    real data size in its ds64 chunk and writes 0xFFFFFFFF in the data chunk."""
    order = ">" if data[:4] == b"RIFX" else "<"
    rf64_size: int | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack(order + "I", data[pos + 4 : pos + 8])
        if chunk_id == b"ds64" and pos + 24 <= len(data):
            (rf64_size,) = struct.unpack("<Q", data[pos + 16 : pos + 24])
        if chunk_id == b"data":
            if size == 0xFFFFFFFF and rf64_size is not None:
                size = rf64_size
            elif size in _UNKNOWN_32:
                return 0
            return max(0, pos + 8 + size - len(data))
        pos += 8 + size + (size & 1)
    return 0


def _aiff(data: bytes) -> int:
    """AIFF/AIFC: big-endian chunks; sample data in SSND (8 bytes of offset and block size,
    then the samples), its size counting those 8 bytes."""
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        if chunk_id == b"SSND":
            return 0 if size in _UNKNOWN_32 else max(0, pos + 8 + size - len(data))
        pos += 8 + size + (size & 1)
    return 0


def _au(data: bytes) -> int:
    """Sun/NeXT AU: a 24-byte big-endian header with the data offset and the data size."""
    if len(data) < 12:
        return 0
    offset, size = struct.unpack(">II", data[4:12])
    return 0 if size in _UNKNOWN_32 else max(0, offset + size - len(data))


def _w64(data: bytes) -> int:
    """Sony Wave64: chunks of (16-byte GUID, 64-bit size counting the 24-byte chunk header),
    aligned to 8 bytes."""
    pos = 40  # riff GUID + size + wave GUID
    while pos + 24 <= len(data):
        guid = data[pos : pos + 16]
        (size,) = struct.unpack("<Q", data[pos + 16 : pos + 24])
        if size < 24:
            return 0  # a malformed chunk: leave the verdict to the decoder
        if guid == _W64_DATA:
            return max(0, pos + size - len(data))
        pos += size + (-size % 8)
    return 0
