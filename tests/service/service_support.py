"""Helpers of the service tests: audio stand-ins, a worker subprocess, polling."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from latsep.jobs import JobStore
from latsep.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def bundle_dirs() -> list[Path]:
    return sorted(p.parent for p in (REPO / "artifacts").glob("*/manifest.json"))


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess the same settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"LATSEP_{name.upper()}"] = str(value)
    return env


class WorkerProcess:
    """`latsep worker` in a subprocess, waited for until it has registered."""

    def __init__(self, settings: Settings, store: JobStore, name: str) -> None:
        self.name = name
        self.log = open(Path(settings.data_dir) / f"{name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "latsep", "worker", "--name", name],
            env=settings_env(settings),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not store.is_worker_alive(name):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"worker did not start:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def tone_mix(seconds: float = 1.0, rate: int = 22050, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(bass, drums) stand-ins: a low sine and decaying noise bursts; their sum is the mix."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    bass = 0.3 * np.sin(2 * np.pi * 55 * t)
    env = np.exp(-((t * 4) % 1.0) * 12)
    drums = 0.2 * env * rng.standard_normal(t.size)
    return bass.astype(np.float32), drums.astype(np.float32)


def wav_bytes(audio: np.ndarray, rate: int = 22050, fmt: str = "WAV", subtype: str = "PCM_16"):
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


def make_bundles(root: Path, seed: int = 0) -> list[Path]:
    """Two untrained tiny bundles on disk, as a worker loads them: plain (lass, mlass-bp,
    mlass-pe) and lq (lqvae, hybrid), both for bass + drums. Random weights and counts: the
    service tests exercise the service, not separation quality. Imports torch (worker side).
    """
    import torch

    from latsep.bundle import save_bundle
    from latsep.models.codec import Codec, CodecConfig
    from latsep.models.prior.transformer import PriorConfig, TransformerPrior
    from latsep.training.counts import TableCounter, TablePlan

    sources = ("bass", "drums")
    rng = np.random.default_rng(seed)
    paths = []
    for kind in ("plain", "lq"):
        torch.manual_seed(seed)
        codec = Codec(CodecConfig.tiny())
        codec.quantizer.embedding.normal_()
        k = codec.num_tokens
        priors = {s: TransformerPrior(PriorConfig.tiny(num_tokens=k)) for s in sources}
        counter = TableCounter(TablePlan(sources, with_chain=False), k)
        tokens = rng.integers(0, k, size=(8, 2, 200))
        counter.add(tokens, {(0, 1): rng.integers(0, k, size=(8, 200))}, [])
        paths.append(
            save_bundle(
                root / kind,
                codec=codec,
                codec_kind=kind,
                priors=priors,
                tables=counter.tables(),
                gaussian_sigma=0.5 if kind == "lq" else None,
                name=f"test-{kind}",
            )
        )
    return paths


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port in a thread; yields its base URL.
    For clients in other processes or browsers (a worker, if any, is started separately)."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=20, interval=0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
