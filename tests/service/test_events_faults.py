"""The event stream ends with an `error` event when Redis fails after it started (#12.5)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from service_support import tone_mix, wav_bytes

from latsep.service import views
from latsep.service.routes import results


def read_events(client: TestClient, path: str) -> list[tuple[str | None, dict]]:
    events = []
    with client.stream("GET", path) as response:
        assert response.status_code == 200
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
    return events


@pytest.mark.usefixtures("fake_registration")
def test_redis_failing_mid_stream_ends_it_with_an_error_event(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    bass, drums = tone_mix(0.5)
    files = {"file": ("mix.wav", wav_bytes(bass + drums))}
    job_id = app_client.post("/separate", data={"method": "lass"}, files=files).json()["job_id"]
    calls = 0

    def flaky_job_public(store, job_id):
        nonlocal calls
        calls += 1
        if calls > 2:  # the first events went out: the 200 is sent
            raise RedisConnectionError("Error 111 connecting to 10.0.0.7:6379. Refused.")
        return views.job_public(store, job_id)

    monkeypatch.setattr(results, "job_public", flaky_job_public)
    events = read_events(app_client, f"/jobs/{job_id}/events")
    assert events[0][0] == "progress"
    assert events[-1][0] == "error"
    message = events[-1][1]["message"]
    assert "unavailable" in message and "10.0.0.7" not in message
