"""The README's curl flow (the first bash block of "## The API"), run as written from a copy
of `examples/` against the app on a loopback port with a real worker."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import soundfile as sf
from service_support import live_server

from latsep.service.app import create_app

ROOT = Path(__file__).resolve().parents[2]


def api_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The API", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_the_readmes_curl_flow_runs_as_written(
    settings, redis, start_worker, tmp_path: Path
) -> None:
    block = api_block()
    assert block.startswith("API=http://127.0.0.1:8000\n")
    work = shutil.copytree(ROOT / "examples", tmp_path / "examples")
    start_worker()
    with live_server(create_app(settings, redis)) as url:
        script = block.replace("API=http://127.0.0.1:8000", f"API={url}", 1)
        script += '\necho "ID=$ID"\n'
        done = subprocess.run(
            ["bash", "-e", "-c", script], cwd=work, capture_output=True, text=True, timeout=300
        )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"^ID=[0-9a-f]{32}$", out, re.M), out
    assert '"methods"' in out and "event: finished" in out
    assert "latsep_jobs_completed_total" in out  # /metrics
    for name in ("bass.wav", "bass.flac"):
        audio, rate = sf.read(work / name)
        assert rate == 22050 and len(audio) == sf.info(work / "mix.wav").frames
    names = zipfile.ZipFile(io.BytesIO((work / "stems.zip").read_bytes())).namelist()
    assert sorted(names) == ["bass.flac", "drums.flac"]
    # the least request and the one with references were accepted too
    assert out.count('"job_id"') >= 2 and '"deleted"' in out
