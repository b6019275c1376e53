"""`latsep serve` (API + worker + embedded Redis) and `latsep separate`, run as a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from service_support import tone_mix, wait_for, wav_bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(tmp_path: Path, bundles: list[Path], port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATSEP_")}
    env.update(
        LATSEP_DATA_DIR=str(tmp_path / "data"),
        LATSEP_BUNDLES=",".join(map(str, bundles)),
        LATSEP_TORCH_THREADS="1",
        LATSEP_PORT=str(port),
        LATSEP_NAMESPACE="servetest",
    )
    log = open(tmp_path / f"serve-{port}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "latsep", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_runs_everything_and_persists_jobs(tmp_path: Path, test_bundles) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(tmp_path, test_bundles, port)
    try:
        wait_for(lambda: ready(base), timeout=90, interval=0.3)
        bass, drums = tone_mix(0.3)
        files = {"file": ("mix.wav", wav_bytes(bass + drums))}
        form = {"method": "mlass-pe", "num_candidates": "1"}
        job_id = httpx.post(f"{base}/separate", data=form, files=files).json()["job_id"]
        job = wait_for(
            lambda: (j := httpx.get(f"{base}/jobs/{job_id}").json())["status"] == "finished" and j,
            timeout=60,
        )
        assert job["stems"]["bass"]["wav"].startswith(f"/jobs/{job_id}/")
    finally:
        code = stop(proc)
    assert code == 0, (tmp_path / f"serve-{port}.log").read_text()
    assert (tmp_path / "data" / "redis.db").stat().st_size > 0  # saved on the way out

    # A restart finds the job and its stems in the embedded Redis' file.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(tmp_path, test_bundles, port)
    try:
        wait_for(lambda: ready(base), timeout=90, interval=0.3)
        again = httpx.get(f"{base}/jobs/{job_id}").json()
        assert again["status"] == "finished"
        stem = httpx.get(f"{base}{again['stems']['drums']['wav']}")
        assert stem.status_code == 200 and stem.content[:4] == b"RIFF"
    finally:
        assert stop(proc) == 0


def test_separate_writes_stems_and_a_summary(tmp_path: Path, test_bundles) -> None:
    bass, drums = tone_mix(0.3)
    (tmp_path / "mix.wav").write_bytes(wav_bytes(bass + drums, subtype="FLOAT"))
    env = {**os.environ, "LATSEP_TORCH_THREADS": "1"}
    bundle_root = str(Path(test_bundles[0]).parent)  # a directory of bundles is accepted
    command = [sys.executable, "-m", "latsep", "separate", str(tmp_path / "mix.wav")]
    command += ["--method", "hybrid", "--out", str(tmp_path / "out"), "--bundle", bundle_root]
    command += ["--num-candidates", "2", "--sources", "drums,bass", "--seed", "4"]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sources"] == ["drums", "bass"] and summary["bundle"] == "test-lq"
    assert summary["options"]["seed"] == 4 and time.monotonic() - start < 120
    stems = {
        s: sf.read(tmp_path / "out" / f"{s}.wav", dtype="float32")[0] for s in ("bass", "drums")
    }
    np.testing.assert_allclose(stems["bass"] + stems["drums"], bass + drums, atol=1e-5)

    wrong = [*command[:5], "--method", "lass", "--out", str(tmp_path / "o2")]
    wrong += ["--bundle", bundle_root, "--sources", "bass,piano"]
    bad = subprocess.run(wrong, capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "cannot separate bass, piano with lass" in bad.stderr


def test_separate_keeps_a_stereo_44k_upload_and_writes_flac(tmp_path: Path, test_bundles) -> None:
    bass, drums = tone_mix(0.3, rate=44100)
    upload = np.stack([bass + drums, drums - bass], 1)
    (tmp_path / "mix.wav").write_bytes(wav_bytes(upload, rate=44100, subtype="FLOAT"))
    env = {**os.environ, "LATSEP_TORCH_THREADS": "1"}
    command = [sys.executable, "-m", "latsep", "separate", str(tmp_path / "mix.wav")]
    command += ["--method", "lass", "--out", str(tmp_path / "out"), "--bundle", test_bundles[0]]
    command += ["--num-candidates", "2", "--sources", "bass,drums"]
    done = subprocess.run(
        [*command, "--format", "flac", "--bit-depth", "24"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sample_rate"] == 44100 and summary["channels"] == 2
    stems = {}
    for source in ("bass", "drums"):
        info = sf.info(tmp_path / "out" / f"{source}.flac")
        assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_24")
        stems[source] = sf.read(tmp_path / "out" / f"{source}.flac", dtype="float32")[0]
    np.testing.assert_allclose(stems["bass"] + stems["drums"], upload, atol=2**-21)

    bad = subprocess.run(
        [*command, "--format", "flac", "--bit-depth", "float"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2 and "FLAC stores 16- or 24-bit" in bad.stderr


def test_friendly_cli_version_methods_device_and_several_files(
    tmp_path: Path, test_bundles
) -> None:
    env = {**os.environ, "LATSEP_TORCH_THREADS": "1"}

    def latsep(*argv: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "latsep", *argv]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    version = latsep("--version")
    assert version.returncode == 0 and version.stdout.startswith("latsep ")
    bundles = [arg for b in test_bundles for arg in ("--bundle", str(b))]
    methods = latsep("methods", "--json", *bundles)
    assert methods.returncode == 0, methods.stderr
    rows = {(r["method"], r["bundle"]): r for r in json.loads(methods.stdout)}
    assert rows[("lass", "test-plain")]["default_sources"] == ["bass", "drums"]
    assert any(r["default"] and r["method"] == "mlass-pe" for r in rows.values())

    bass, drums = tone_mix(0.2)
    for name, gain in (("one", 1.0), ("two", 0.5)):
        (tmp_path / f"{name}.wav").write_bytes(wav_bytes(gain * (bass + drums), subtype="FLOAT"))
    (tmp_path / "bass.wav").write_bytes(wav_bytes(bass, subtype="FLOAT"))
    (tmp_path / "drums.wav").write_bytes(wav_bytes(drums, subtype="FLOAT"))
    cuda = latsep("separate", str(tmp_path / "one.wav"), "--out", str(tmp_path), "--device", "cuda")
    if cuda.returncode != 0:  # a machine without CUDA: one line, no traceback
        assert cuda.returncode == 2 and "Traceback" not in cuda.stderr
        assert cuda.stderr.strip().count("\n") == 0 and "CUDA" in cuda.stderr

    common = ["--method", "lass", "--num-candidates", "2", *bundles[:2]]
    several = latsep(
        "separate", str(tmp_path / "one.wav"), str(tmp_path / "two.wav"),
        "--out", str(tmp_path / "out"), *common, "--quiet",
    )  # fmt: skip
    assert several.returncode == 0, several.stderr
    assert "%|" not in several.stderr  # --quiet: no progress bar
    summaries = json.loads(several.stdout)
    assert [s["file"] for s in summaries] == [str(tmp_path / "one.wav"), str(tmp_path / "two.wav")]
    for name in ("one", "two"):
        assert sorted(p.name for p in (tmp_path / "out" / name).iterdir()) == [
            "bass.wav",
            "drums.wav",
        ]
    # the references name the sources: no --sources needed
    referenced = latsep(
        "separate", str(tmp_path / "one.wav"), "--out", str(tmp_path / "ref"), *common,
        "--reference", f"drums={tmp_path / 'drums.wav'}",
        "--reference", f"bass={tmp_path / 'bass.wav'}",
    )  # fmt: skip
    assert referenced.returncode == 0, referenced.stderr
    assert "one.wav: 100%|" in referenced.stderr and "separating" in referenced.stderr  # tqdm
    summary = json.loads(referenced.stdout)
    assert summary["sources"] == ["drums", "bass"] and set(summary["sdr"]) == {"bass", "drums"}
