"""Malformed requests of every kind: each gets a 4xx with a JSON error, never a 5xx (#12)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

MULTIPART = "multipart/form-data; boundary=b"


def wav(**kw) -> bytes:
    buffer = io.BytesIO()
    audio = 0.1 * np.random.default_rng(0).standard_normal(2205).astype(np.float32)
    sf.write(buffer, audio, 22050, format=kw.get("fmt", "WAV"), subtype=kw.get("sub", "PCM_16"))
    return buffer.getvalue()


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--b\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


WAV = wav()
HEADER = WAV[:44]
BAD_FMT = WAV[:20] + struct.pack("<H", 0xBEEF) + WAV[22:]  # unknown sample format
HUGE_RATE = WAV[:24] + struct.pack("<I", 2**31 - 1) + WAV[28:]
ZERO_CHANNELS = WAV[:22] + struct.pack("<H", 0) + WAV[24:]

# (label, form fields, files) posted to /separate.
UPLOADS = [
    ("no file", {"method": "lass"}, {}),
    ("file as text", {"method": "lass", "file": "abc"}, {}),
    ("empty file", {"method": "lass"}, {"file": ("a.wav", b"")}),
    ("header only", {"method": "lass"}, {"file": ("a.wav", HEADER)}),
    ("unknown sample format", {"method": "lass"}, {"file": ("a.wav", BAD_FMT)}),
    ("absurd sample rate", {"method": "lass"}, {"file": ("a.wav", HUGE_RATE)}),
    ("zero channels", {"method": "lass"}, {"file": ("a.wav", ZERO_CHANNELS)}),
    ("riff of garbage", {"method": "lass"}, {"file": ("a.wav", b"RIFF" + bytes(60))}),
    ("ogg magic", {"method": "lass"}, {"file": ("a.ogg", b"OggS" + bytes(200))}),
    ("flac magic", {"method": "lass"}, {"file": ("a.flac", b"fLaC" + bytes(200))}),
    ("mp3 frame", {"method": "lass"}, {"file": ("a.mp3", b"\xff\xfb\x90\x64" + bytes(400))}),
    ("aiff of garbage", {"method": "lass"}, {"file": ("a.aif", b"FORM\0\0\0\x10AIFF" + bytes(8))}),
    ("au of garbage", {"method": "lass"}, {"file": ("a.au", b".snd" + bytes(20))}),
    ("w64 header", {"method": "lass"}, {"file": ("a.w64", wav(fmt="W64")[:60])}),
    ("text file", {"method": "lass"}, {"file": ("a.txt", b"hello " * 100)}),
    ("method blank", {"method": " "}, {"file": ("a.wav", WAV)}),  # empty: the default method
    ("method unicode", {"method": "läss\u202e"}, {"file": ("a.wav", WAV)}),
    ("sources junk", {"method": "lass", "sources": ",,,"}, {"file": ("a.wav", WAV)}),
    ("sources huge", {"method": "lass", "sources": "x," * 5000}, {"file": ("a.wav", WAV)}),
    ("num_candidates text", {"method": "lass", "num_candidates": "many"}, {"file": ("a", WAV)}),
    ("num_candidates huge", {"method": "lass", "num_candidates": "9" * 40}, {"file": ("a", WAV)}),
    ("temperature text", {"method": "lass", "temperature": "hot"}, {"file": ("a", WAV)}),
    ("temperature 1e999", {"method": "lass", "temperature": "1e999"}, {"file": ("a", WAV)}),
    ("top_k negative", {"method": "lass", "top_k": "-1"}, {"file": ("a", WAV)}),
    ("seed float", {"method": "lass", "seed": "1.5"}, {"file": ("a", WAV)}),
    ("seed 2^64", {"method": "lass", "seed": str(2**64)}, {"file": ("a", WAV)}),
    ("seed 2^200", {"method": "lass", "seed": str(2**200)}, {"file": ("a", WAV)}),
    ("weight zero", {"method": "lass", "likelihood_weight": "0"}, {"file": ("a", WAV)}),
    ("search junk", {"method": "lass", "search": "dfs"}, {"file": ("a", WAV)}),
    ("reference text", {"method": "lass", "reference_bass": "x"}, {"file": ("a", WAV)}),
    ("reference empty", {"method": "lass"}, {"file": ("a", WAV), "reference_": ("r", WAV)}),
    (
        "references of garbage",
        {"method": "lass"},
        {"file": ("a", WAV), "reference_bass": ("b", b"x"), "reference_drums": ("d", b"y")},
    ),
]

# (label, content type, raw body) posted to /separate.
RAW_BODIES = [
    ("json body", "application/json", b'{"method": "lass"}'),
    ("no boundary", "multipart/form-data", b"abc"),
    ("broken part header", MULTIPART, b"--b\r\nno-colon\r\n\r\nv\r\n--b--"),
    ("unterminated", MULTIPART, part("method", b"lass") + b"--b\r\nContent-Dispo"),
    ("binary noise", MULTIPART, np.random.default_rng(1).bytes(4096)),
    ("urlencoded", "application/x-www-form-urlencoded", b"method=lass&file=abc"),
    ("text", "text/plain", b"hello"),
    ("no content type", "", b"\x00\x01\x02"),
    ("filename traversal", MULTIPART, part("method", b"lass") + part("file", WAV, "../../x")),
]

# (label, method, path).
OTHER = [
    ("unicode job id", "GET", "/jobs/%E2%80%AE%00"),
    ("long job id", "GET", "/jobs/" + "a" * 5000),
    ("stem of nothing", "GET", "/jobs/x/stems/%2e%2e"),
    ("bad stem format", "GET", "/jobs/x/stems/bass?format=mp3"),
    ("zip of nothing", "GET", "/jobs/x/stems.zip"),
    ("events of nothing", "GET", "/jobs/x/events"),
    ("patch a job", "PATCH", "/jobs/x"),
    ("put separate", "PUT", "/separate"),
    ("unknown path", "GET", "/admin"),
    ("trace", "TRACE", "/healthz"),
]


def assert_clean_4xx(response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.json()["error"]["status"] == response.status_code


@pytest.mark.usefixtures("fake_registration")
@pytest.mark.parametrize(("label", "form", "files"), UPLOADS, ids=[u[0] for u in UPLOADS])
def test_malformed_uploads(app_client: TestClient, label: str, form: dict, files: dict) -> None:
    assert_clean_4xx(app_client.post("/separate", data=form, files=files or None))


@pytest.mark.usefixtures("fake_registration")
@pytest.mark.parametrize(("label", "ctype", "body"), RAW_BODIES, ids=[b[0] for b in RAW_BODIES])
def test_malformed_bodies(app_client: TestClient, label: str, ctype: str, body: bytes) -> None:
    headers = {"content-type": ctype} if ctype else {}
    assert_clean_4xx(app_client.post("/separate", content=body, headers=headers))


@pytest.mark.parametrize(("label", "method", "path"), OTHER, ids=[o[0] for o in OTHER])
def test_malformed_paths(app_client: TestClient, label: str, method: str, path: str) -> None:
    assert_clean_4xx(app_client.request(method, path))
