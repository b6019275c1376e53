"""The whole HTTP flow with a real `latsep worker` process and a real Redis.

Bundles are untrained tiny ones written by the test session (see `make_bundles`): these
tests hold the service to its contract, not the separation to a quality.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import soundfile as sf
from fastapi.testclient import TestClient
from service_support import tone_mix, wait_for, wav_bytes

from latsep.jobs import JobStore

TERMINAL = ("finished", "failed", "canceled")


def submit(client: TestClient, audio: np.ndarray, refs: dict | None = None, **fields) -> str:
    files = {"file": ("mix.wav", wav_bytes(audio, subtype="FLOAT"))}
    for source, ref in (refs or {}).items():
        files[f"reference_{source}"] = (f"{source}.wav", wav_bytes(ref, subtype="FLOAT"))
    form = {"method": "lass", "num_candidates": "2", **{k: str(v) for k, v in fields.items()}}
    response = client.post("/separate", data=form, files=files)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def wait_job(client: TestClient, job_id: str, timeout: float = 60.0, until=TERMINAL) -> dict:
    def poll():
        job = client.get(f"/jobs/{job_id}").json()
        return job if job["status"] in until else None

    return wait_for(poll, timeout=timeout, interval=0.1)


def read_wav(data: bytes) -> np.ndarray:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == 22050
    return audio


def test_full_flow_with_references(app_client: TestClient, start_worker, store: JobStore) -> None:
    start_worker()
    assert app_client.get("/readyz").status_code == 200
    methods = {m["name"]: m for m in app_client.get("/methods").json()["methods"]}
    assert list(methods) == ["lass", "lqvae", "hybrid", "mlass-bp", "mlass-pe"]
    assert methods["lass"]["bundles"] == ["test-plain"]
    assert methods["hybrid"]["bundles"] == ["test-lq"]
    assert methods["lass"]["sources"] == ["bass", "drums"]

    bass, drums = tone_mix(1.0)
    job_id = submit(app_client, bass + drums, {"bass": bass, "drums": drums}, seed=5)
    job = wait_job(app_client, job_id)
    assert job["status"] == "finished", job
    assert job["progress"] == 1.0 and job["error"] is None
    assert job["sample_rate"] == 22050 and job["bundle"] == "test-plain"
    assert set(job["sdr"]) == {"bass", "drums"} and set(job["si_sdr"]) == {"bass", "drums"}
    # The oracle the worker computed reaches the client as stored (its correctness is the
    # worker's test: tests/worker/test_worker_pipeline.py).
    stored = store.fetch_result(job_id)
    assert stored is not None and stored.oracle is not None
    assert job["oracle"] == stored.oracle.model_dump()
    assert len(job["candidate_consistency"]) == 2
    assert job["timings"]["run_s"] > 0 and job["timings"]["stages"]["separate_s"] > 0

    stems = {}
    for source, links in job["stems"].items():
        response = app_client.get(links["wav"])
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/wav"
        stems[source] = read_wav(response.content)
        flac = app_client.get(links["flac"])
        assert flac.headers["content-type"] == "audio/flac"
        np.testing.assert_allclose(read_wav(flac.content), stems[source], atol=2e-7 * 2**8)
    # Wiener consistency: the stems sum to the uploaded mixture.
    np.testing.assert_allclose(stems["bass"] + stems["drums"], bass + drums, atol=1e-5)

    archive = zipfile.ZipFile(io.BytesIO(app_client.get(job["zip_url"]).content))
    assert sorted(archive.namelist()) == ["bass.wav", "drums.wav"]
    np.testing.assert_array_equal(read_wav(archive.read("bass.wav")), stems["bass"])

    assert app_client.get(f"/jobs/{job_id}/stems/piano").status_code == 404

    # Same seed, same stems.
    again = wait_job(app_client, submit(app_client, bass + drums, seed=5))
    repeat = read_wav(app_client.get(again["stems"]["bass"]["wav"]).content)
    np.testing.assert_array_equal(repeat, stems["bass"])

    # SSE on a finished job: one final event carrying the job.
    with app_client.stream("GET", f"/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    assert "event: finished" in text

    metrics = app_client.get("/metrics").text
    assert 'latsep_jobs_completed_total{method="lass",status="finished"} 2.0' in metrics
    assert 'latsep_job_duration_seconds_count{method="lass"} 2.0' in metrics
    assert 'latsep_jobs{state="finished"} 2.0' in metrics


def test_stereo_44k_stems_come_back_stereo_44k_in_every_format(
    app_client: TestClient, start_worker
) -> None:
    """Stems keep the upload's rate and channels and sum to it; downloads as float, 24- or
    16-bit WAV and FLAC; float FLAC is refused."""
    start_worker()
    bass, drums = tone_mix(0.5, rate=44100)
    upload = np.stack([bass + drums, bass - 0.5 * drums], 1)  # (L, 2)
    files = {"file": ("mix.wav", wav_bytes(upload, rate=44100, subtype="FLOAT"))}
    form = {"method": "lass", "num_candidates": "2", "sources": "bass,drums"}
    response = app_client.post("/separate", data=form, files=files)
    assert response.status_code == 202, response.text
    job = wait_job(app_client, response.json()["job_id"])
    assert job["status"] == "finished", job
    assert job["sample_rate"] == 44100 and job["channels"] == 2
    stems = {}
    for source, links in job["stems"].items():
        stems[source], rate = sf.read(io.BytesIO(app_client.get(links["wav"]).content))
        assert rate == 44100 and stems[source].shape == upload.shape
        for query, subtype, atol in (
            ("format=wav&bit_depth=24", "PCM_24", 2**-22),
            ("format=wav&bit_depth=16", "PCM_16", 2**-14),
            ("format=flac&bit_depth=16", "PCM_16", 2**-14),
            ("format=flac", "PCM_24", 2**-22),
        ):
            data = app_client.get(links["wav"].split("?")[0] + "?" + query).content
            assert sf.info(io.BytesIO(data)).subtype == subtype
            audio, rate = sf.read(io.BytesIO(data))
            assert rate == 44100
            np.testing.assert_allclose(audio, stems[source], atol=atol)
        refused = app_client.get(links["wav"].split("?")[0] + "?format=flac&bit_depth=float")
        assert refused.status_code == 422
    np.testing.assert_allclose(stems["bass"] + stems["drums"], upload, atol=1e-5)
    zipped = app_client.get(job["zip_url"] + "?format=flac&bit_depth=16").content
    assert sorted(zipfile.ZipFile(io.BytesIO(zipped)).namelist()) == ["bass.flac", "drums.flac"]


def test_progress_events_stream_until_the_end(app_client: TestClient, start_worker) -> None:
    start_worker()
    bass, drums = tone_mix(2.0)
    job_id = submit(app_client, bass + drums, method="mlass-pe")
    events = []
    with app_client.stream("GET", f"/jobs/{job_id}/events") as response:
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
    names = [n for n, _ in events]
    assert names[-1] == "finished" and names.count("finished") == 1
    progress = [d["progress"] for n, d in events if n == "progress"]
    assert progress == sorted(progress)
    assert any(0.0 < p < 1.0 for p in progress), progress  # per-window progress was seen
    assert {d["status"] for n, d in events if n == "progress"} <= {"queued", "started"}


def test_concurrent_submissions_are_all_served(app_client: TestClient, start_worker) -> None:
    start_worker()
    mixes = [sum(tone_mix(0.3, seed=i)) for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda m: submit(app_client, m, method="mlass-pe"), mixes))
    assert len(set(ids)) == 8
    for job_id in ids:
        assert wait_job(app_client, job_id, timeout=120)["status"] == "finished"


def test_a_killed_worker_is_detected_and_its_job_retried(
    app_client: TestClient, start_worker
) -> None:
    first = start_worker("doomed")
    bass, drums = tone_mix(3.0)
    job_id = submit(app_client, bass + drums, method="lass")
    running = wait_job(app_client, job_id, until=("started",))
    wait_for(lambda: app_client.get(f"/jobs/{job_id}").json()["progress"] > 0.1, timeout=60)
    assert running["status"] == "started"
    first.kill()  # SIGKILL mid-job: no cleanup of any kind runs

    requeued = wait_job(app_client, job_id, timeout=20, until=("queued", "failed"))
    assert requeued["status"] == "queued", requeued
    assert "its worker stopped" in requeued["stage"]
    assert app_client.get("/readyz").status_code == 503  # nobody serves now

    start_worker("rescuer")
    done = wait_job(app_client, job_id, timeout=90)
    assert done["status"] == "finished", done


def test_cancel_a_running_job(app_client: TestClient, start_worker) -> None:
    start_worker()
    bass, drums = tone_mix(3.0)
    job_id = submit(app_client, bass + drums, method="lass")
    wait_for(lambda: app_client.get(f"/jobs/{job_id}").json()["progress"] > 0.1, timeout=60)
    response = app_client.delete(f"/jobs/{job_id}")
    assert response.json() == {"job_id": job_id, "status": "canceling"}
    job = wait_job(app_client, job_id, timeout=30)
    assert job["status"] == "canceled" and job["cancel_requested"]
    assert app_client.get(f"/jobs/{job_id}/stems/bass").status_code == 409
    # The worker goes on serving.
    after = wait_job(app_client, submit(app_client, sum(tone_mix(0.3)), method="mlass-pe"))
    assert after["status"] == "finished"


def test_sigterm_lets_the_running_job_finish(
    app_client: TestClient, start_worker, store: JobStore
) -> None:
    worker = start_worker()
    bass, drums = tone_mix(2.0)
    job_id = submit(app_client, bass + drums, method="lass")
    wait_for(lambda: app_client.get(f"/jobs/{job_id}").json()["progress"] > 0.1, timeout=60)
    worker.proc.send_signal(signal.SIGTERM)  # what `docker stop` sends
    assert worker.proc.wait(timeout=60) == 0
    job = app_client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "finished", job
    assert not store.is_worker_alive(worker.name)


def test_a_job_longer_than_its_timeout_fails(settings, redis, start_worker) -> None:
    from latsep.service.app import create_app

    strict = settings.model_copy(
        update={"job_timeout_base_seconds": 1.0, "job_timeout_per_audio_second": 0.01}
    )
    with TestClient(create_app(strict, redis)) as client:
        start_worker()
        bass, drums = tone_mix(3.0)
        job = wait_job(client, submit(client, bass + drums, method="lass"), timeout=60)
    assert job["status"] == "failed"
    assert "longer than its timeout of 1 s" in job["error"]


def test_readyz_follows_the_worker_lifecycle(
    app_client: TestClient, start_worker, store: JobStore
) -> None:
    assert app_client.get("/readyz").status_code == 503
    worker = start_worker()
    ready = app_client.get("/readyz").json()
    assert ready["workers"] == 1 and "hybrid" in ready["methods"]
    worker.stop()  # SIGTERM: warm shutdown unregisters at once
    assert app_client.get("/readyz").status_code == 503
    assert app_client.get("/methods").json() == {"methods": [], "workers": 0}


def test_the_api_never_imports_torch() -> None:
    code = (
        "import sys, latsep.service.app as a, latsep.cli as c; "
        "a.create_app(); c.build_parser(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_timestamps_are_ordered(app_client: TestClient, start_worker) -> None:
    start_worker()
    job = wait_job(app_client, submit(app_client, sum(tone_mix(0.3)), method="mlass-pe"))
    t = job["timings"]
    assert t["submitted_at"] <= t["enqueued_at"] + 1e-3
    assert t["enqueued_at"] <= t["started_at"] <= t["ended_at"] <= time.time() + 1
