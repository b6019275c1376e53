"""mypy over the files pyproject.toml names (the service side, the worker, the client, and the
test stand-in for a bundle, checked against `worker.routing.ServedBundle`): CI runs the tests,
so the types are held there too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def test_mypy_passes_on_the_configured_files(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
