"""Errors say what is wrong in the client's terms, without the process' internals (#12.6)."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from fastapi.testclient import TestClient
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from latsep.jobs.status import user_facing
from latsep.settings import Settings

INTERNALS = ("0x", "BytesIO", "<", "127.0.0.1", "Error opening")


def assert_clean(message: str) -> None:
    for leak in INTERNALS:
        assert leak not in message, message


@pytest.mark.usefixtures("fake_registration")
@pytest.mark.parametrize(
    "data",
    [
        np.random.default_rng(0).bytes(5000),  # no known format
        b"RIFF\x10\x00\x00\x00WAVEfmt ",  # a WAV header and nothing else
        b"fLaC" + bytes(50),  # a FLAC marker and garbage
    ],
)
def test_undecodable_uploads_say_why_without_object_reprs(app_client: TestClient, data) -> None:
    response = app_client.post("/separate", data={"method": "lass"}, files={"file": ("x", data)})
    assert response.status_code == 415, response.text
    message = response.json()["error"]["message"]
    assert message.startswith("file: not a readable audio file")
    assert_clean(message)
    assert "/tmp" not in message and "latsep-" not in message  # no server-side temp path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_down_says_so_without_host_and_port(settings: Settings) -> None:
    from latsep.service.app import create_app

    port = _free_port()
    dead = Redis(port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    with TestClient(create_app(settings, dead)) as client:
        for response in (client.get("/jobs/abc"), client.get("/readyz")):
            assert response.status_code == 503
            message = response.json()["error"]["message"]
            assert "unavailable" in message and str(port) not in message
            assert_clean(message)


def test_a_failed_jobs_error_is_cleaned_for_the_client() -> None:
    raw = "not a readable audio file: Error opening <_io.BytesIO object at 0x7f00ab>: Bad."
    assert user_facing(raw) == "not a readable audio file: Bad."
