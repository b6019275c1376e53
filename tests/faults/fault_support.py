"""Helpers of the fault tests: a worker registration, submissions, polling, figures."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from latsep.jobs import BundleInfo, WorkerInfo

TERMINAL = ("finished", "failed", "canceled")


def registration(name: str = "registered-only") -> WorkerInfo:
    """What a worker serving lass on bass + drums registers (API-side tests need no worker)."""
    return WorkerInfo(
        name=name,
        hostname="test",
        pid=0,
        device="cpu",
        queues=["latsep.lass"],
        bundles=[
            BundleInfo(
                name="tiny",
                sources=["bass", "drums"],
                methods=["lass"],
                max_sources={"lass": 2},
                source_sets={"lass": [["bass", "drums"]]},
                sample_rate=22050,
            )
        ],
        started_at=time.time(),
    )


def mix(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 22050)) / 22050
    return (0.3 * np.sin(2 * np.pi * 55 * t) + 0.1 * rng.standard_normal(t.size)).astype("f4")


def post_mix(client: TestClient, wav: bytes, **fields: str):
    form = {"method": "lass", "num_candidates": "2", **fields}
    return client.post("/separate", data=form, files={"file": ("mix.wav", wav)})


def wait_status(client: TestClient, job_id: str, until=TERMINAL, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/jobs/{job_id}")
        if response.status_code == 200 and response.json()["status"] in until:
            return response.json()
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} not in {until} after {timeout} s")


def record(name: str, **figures: object) -> None:
    """Print a test's figures (`pytest -s` shows them) and append them, as JSON lines, to
    $LATSEP_FAULT_REPORT when set: the README quotes them."""
    line = json.dumps({"test": name, **figures})
    print(f"FIGURES {line}")
    target = os.environ.get("LATSEP_FAULT_REPORT")
    if target:
        with Path(target).open("a") as out:
            out.write(line + "\n")
