"""What libsndfile cannot read (m4a/AAC, Opus in MP4/WebM, WMA, ...), decoded by an ffmpeg
subprocess: `ffprobe` first (channels, rate, duration: the limits are checked before any
sample is decoded), then `ffmpeg` to float32 at the file's own rate and channels, cut at the
duration limit (`-t`), so a header that lies cannot decode to more than the limit allows.
Absent ffmpeg, such files stay undecodable (415).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latsep.audio.errors import AudioTooLong, UndecodableAudio

_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Probe:
    """The first audio stream: its rate, channels and duration (0.0 when unknown)."""

    sample_rate: int
    channels: int
    duration_seconds: float


def available() -> bool:
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def probe(source: str | Path | bytes) -> Probe:
    """ffprobe's view of the first audio stream; UndecodableAudio when there is none."""
    with _as_path(source) as path:
        command = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-of", "json"]
        command += ["-show_entries", "stream=sample_rate,channels,duration:format=duration"]
        done = _run([*command, path], path)
    try:
        info = json.loads(done.stdout or b"{}")
        stream = info["streams"][0]
        rate, channels = int(stream["sample_rate"]), int(stream["channels"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise UndecodableAudio("not a readable audio file: no audio stream found") from exc
    duration = stream.get("duration") or info.get("format", {}).get("duration") or 0.0
    try:
        seconds = float(duration)
    except ValueError:
        seconds = 0.0
    if rate <= 0 or channels <= 0:
        raise UndecodableAudio("not a readable audio file: no audio stream found")
    return Probe(rate, channels, seconds if np.isfinite(seconds) else 0.0)


def decode(source: str | Path | bytes, found: Probe, max_seconds: float) -> tuple[np.ndarray, int]:
    """(channels, L) float32 at the stream's rate; AudioTooLong when it decodes to more than
    `max_seconds` (decoding stops just past it)."""
    with _as_path(source) as path:
        command = ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0", "-vn"]
        command += ["-t", f"{max_seconds + 1.0:.3f}", "-f", "f32le", "-acodec", "pcm_f32le"]
        command += ["-ac", str(found.channels), "-ar", str(found.sample_rate), "pipe:1"]
        done = _run(command, path)
    samples = np.frombuffer(done.stdout, dtype="<f4")
    frames = samples.size // found.channels
    if frames / found.sample_rate > max_seconds:
        raise AudioTooLong(f"audio is longer than the limit of {max_seconds:.1f} s")
    audio = samples[: frames * found.channels].reshape(frames, found.channels).T
    return np.ascontiguousarray(audio, dtype=np.float32), found.sample_rate


def _run(command: list[str], path: str) -> subprocess.CompletedProcess[bytes]:
    """The command's result; UndecodableAudio with ffmpeg's last error line, in which the
    input's path (a temp file of the server's for an upload) is replaced by "input"."""
    try:
        done = subprocess.run(command, capture_output=True, timeout=_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UndecodableAudio(f"not a readable audio file: {type(exc).__name__}") from exc
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        last = reason[-1].replace(path, "input") if reason else None
        text = last or f"exit status {done.returncode}"
        raise UndecodableAudio(f"not a readable audio file: {text[:200]}")
    return done


@contextmanager
def _as_path(source: str | Path | bytes) -> Iterator[str]:
    """A path ffmpeg can seek in (MP4 keeps its index at the end): bytes go to a temp file."""
    if not isinstance(source, bytes | bytearray):
        yield str(source)
        return
    handle, name = tempfile.mkstemp(prefix="latsep-", suffix=".audio")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(source)
        yield name
    finally:
        os.unlink(name)
