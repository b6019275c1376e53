"""HTTP details the probe of issue #12.9 found: Allow, the documented 400, the request body's
media types, and explicit Redis socket timeouts."""

from __future__ import annotations

from fastapi.testclient import TestClient
from redis import Redis

from latsep.jobs import connect
from latsep.service.app import create_app
from latsep.settings import Settings


def test_options_and_405_name_every_method_of_the_path(app_client: TestClient) -> None:
    options = app_client.options("/jobs/abc")
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, DELETE, OPTIONS"
    refused = app_client.put("/jobs/abc")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, DELETE, OPTIONS"
    assert refused.json()["error"]["code"] == "method_not_allowed"
    assert app_client.options("/separate").headers["allow"] == "POST, OPTIONS"


def test_an_invalid_multipart_body_is_a_documented_400(app_client: TestClient) -> None:
    response = app_client.post(
        "/separate",
        content=b"--x\r\nno-colon-header\r\n\r\nv\r\n--x--",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    spec = app_client.get("/openapi.json").json()
    assert "400" in spec["paths"]["/separate"]["post"]["responses"]


def test_the_upload_has_no_wildcard_media_type(app_client: TestClient) -> None:
    """`audio/*` is no type a client can send; schemathesis' stateful phase stopped on it."""
    spec = app_client.get("/openapi.json").json()
    assert "audio/*" not in str(spec["paths"]["/separate"]["post"]["requestBody"])


def test_redis_socket_timeouts_come_from_the_settings(redis_url: str) -> None:
    settings = Settings(
        redis_url=redis_url, redis_socket_timeout_seconds=1.5, redis_connect_timeout_seconds=0.7
    )
    app = create_app(settings)
    kwargs = app.state.store.redis.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 1.5 and kwargs["socket_connect_timeout"] == 0.7
    client: Redis = connect(redis_url, **Settings().redis_timeouts())
    assert client.connection_pool.connection_kwargs["socket_timeout"] == 5.0
