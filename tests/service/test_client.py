"""`latsep.client` against the real app and a real worker, and `latsep separate --remote`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from redis import Redis
from service_support import live_server, tone_mix, wav_bytes

from latsep.client import ApiError, Client, JobFailed
from latsep.service.app import create_app
from latsep.settings import Settings

KEY = "k" * 16 + "-client"


def write_mix(directory: Path, seconds: float = 1.0) -> tuple[Path, dict[str, Path]]:
    bass, drums = tone_mix(seconds)
    (directory / "mix.wav").write_bytes(wav_bytes(bass + drums, subtype="FLOAT"))
    refs = {}
    for source, audio in (("bass", bass), ("drums", drums)):
        refs[source] = directory / f"{source}.wav"
        refs[source].write_bytes(wav_bytes(audio, subtype="FLOAT"))
    return directory / "mix.wav", refs


def test_separate_wait_and_download(app_client: TestClient, start_worker, tmp_path: Path) -> None:
    start_worker()
    mix, refs = write_mix(tmp_path)
    client = Client("http://testserver", http=app_client)
    assert [m["name"] for m in client.methods()][:2] == ["lass", "lqvae"]
    result = client.separate(
        mix, method="mlass-pe", sources="bass,drums", references=refs, num_candidates=2, seed=3
    )
    seen = []
    job = result.wait(timeout=60, on_progress=seen.append)
    assert job.status == "finished" and job.progress == 1.0
    assert seen[-1] is job and [j.progress for j in seen] == sorted(j.progress for j in seen)
    assert set(job.sdr or {}) == {"bass", "drums"} and result.sdr == job.sdr
    assert job.raw["options"]["seed"] == 3

    files = result.download(tmp_path / "stems")
    assert files == {s: tmp_path / "stems" / f"{s}.wav" for s in ("bass", "drums")}
    stems = {s: sf.read(p, dtype="float32")[0] for s, p in files.items()}
    mixture = sf.read(mix, dtype="float32")[0]
    np.testing.assert_allclose(stems["bass"] + stems["drums"], mixture, atol=1e-5)
    flac = result.download(tmp_path / "flac", format="flac")
    assert sf.info(str(flac["bass"])).format == "FLAC"
    assert result.download_zip(tmp_path / "stems.zip").read_bytes()[:2] == b"PK"
    assert result.cancel() == "deleted"


def test_errors_carry_the_apis_code_and_message(
    app_client: TestClient, fake_registration, tmp_path: Path
) -> None:
    mix, _ = write_mix(tmp_path, 0.3)
    client = Client("http://testserver", http=app_client)
    with pytest.raises(ApiError) as raised:
        client.separate(mix, method="lass", sources=["bass", "piano"])
    assert raised.value.status == 422 and "piano" in raised.value.message
    with pytest.raises(ApiError) as missing:
        client.job("nope")
    assert missing.value.status == 404 and missing.value.code == "not_found"

    queued = client.separate(mix, method="lass")  # no worker runs: it stays queued
    assert queued.cancel() == "canceled"
    with pytest.raises(JobFailed) as failed:
        queued.wait(timeout=10)
    assert failed.value.job.status == "canceled"


def test_the_api_key_travels_as_a_bearer_token(
    settings: Settings, redis: Redis, fake_registration, tmp_path: Path
) -> None:
    mix, _ = write_mix(tmp_path, 0.3)
    locked = settings.model_copy(update={"api_keys": KEY})
    with TestClient(create_app(locked, redis)) as http:
        with pytest.raises(ApiError) as refused:
            Client("http://testserver", http=http).methods()
        assert refused.value.status == 401
        client = Client("http://testserver", KEY, http=http)
        assert client.methods()
        result = client.separate(mix, method="lass")
        assert client.job(result.job_id).status == "queued"


def test_the_cli_separates_remotely(
    settings: Settings, redis: Redis, start_worker, tmp_path: Path
) -> None:
    mix, refs = write_mix(tmp_path)
    locked = settings.model_copy(update={"api_keys": KEY})
    start_worker()
    with live_server(create_app(locked, redis)) as url:
        command = [sys.executable, "-m", "latsep", "separate", str(mix), "--remote", url]
        command += ["--method", "hybrid", "--out", str(tmp_path / "out"), "--seed", "4"]
        command += ["--num-candidates", "2", "--reference", f"bass={refs['bass']}"]
        command += ["--reference", f"drums={refs['drums']}"]
        env = {**os.environ, "LATSEP_API_KEY": KEY}
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["status"] == "finished" and summary["options"]["seed"] == 4
        assert set(summary["sdr"]) == {"bass", "drums"}
        assert summary["files"] == {s: str(tmp_path / "out" / f"{s}.wav") for s in refs}
        assert "100%" in done.stderr
        stems = [sf.read(summary["files"][s], dtype="float32")[0] for s in refs]
        np.testing.assert_allclose(sum(stems), sf.read(mix, dtype="float32")[0], atol=1e-5)

        no_key = {k: v for k, v in env.items() if k != "LATSEP_API_KEY"}
        refused = subprocess.run(command, capture_output=True, text=True, env=no_key, timeout=60)
        assert refused.returncode == 1 and "401" in refused.stderr


def test_the_client_imports_no_torch() -> None:
    code = "import sys, latsep.client; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
