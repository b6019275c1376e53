"""API keys, the origin check and CORS, and the refusal to listen unprotected (#12.7)."""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest
from fastapi.testclient import TestClient
from redis import Redis
from service_support import settings_env, tone_mix, wav_bytes

from latsep.service.app import create_app
from latsep.service.security import UnsafeExposure, check_exposure
from latsep.settings import Settings

KEY = "k" * 16 + "-first"
OTHER_KEY = "o" * 16 + "-second"
EVIL = "https://evil.example"
FRIEND = "https://app.example"


def mix() -> dict:
    bass, drums = tone_mix(0.3)
    return {"file": ("mix.wav", wav_bytes(bass + drums))}


def post(client: TestClient, headers: dict | None = None):
    return client.post("/separate", data={"method": "lass"}, files=mix(), headers=headers or {})


@pytest.fixture
def keyed(settings: Settings, redis: Redis, fake_registration):
    locked = settings.model_copy(
        update={"api_keys": f"{KEY}, {OTHER_KEY}", "cors_origins": FRIEND + "/"}
    )
    with TestClient(create_app(locked, redis)) as client:
        yield client


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


class TestApiKeys:
    def test_requests_without_a_valid_key_are_401(self, keyed: TestClient) -> None:
        for response in (
            post(keyed),
            post(keyed, bearer("x" * 20)),
            post(keyed, {"Authorization": f"Basic {KEY}"}),
            keyed.get("/jobs/abc"),
            keyed.delete("/jobs/abc"),
            keyed.get("/methods"),
            keyed.get("/metrics"),
        ):
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"

    def test_every_configured_key_works(self, keyed: TestClient) -> None:
        for key in (KEY, OTHER_KEY):
            created = post(keyed, bearer(key))
            assert created.status_code == 202, created.text
            assert keyed.get(created.json()["url"], headers=bearer(key)).status_code == 200

    def test_probes_and_docs_stay_open(self, keyed: TestClient) -> None:
        assert keyed.get("/healthz").status_code == 200
        assert keyed.get("/readyz").status_code == 200
        spec = keyed.get("/openapi.json").json()
        assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
        assert spec["paths"]["/separate"]["post"]["security"] == [{"apiKey": []}]
        assert "401" in spec["paths"]["/jobs/{job_id}"]["get"]["responses"]
        assert "security" not in spec["paths"]["/healthz"]["get"]

    def test_an_anonymous_upload_is_refused_before_its_body_is_read(
        self, keyed: TestClient
    ) -> None:
        pulled = 0
        sent: list[dict] = []

        async def receive() -> dict:
            nonlocal pulled
            pulled += 1
            return {"type": "http.request", "body": b"\1" * 65536, "more_body": True}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "path": "/separate",
            "raw_path": b"/separate",
            "query_string": b"",
            "root_path": "",
            "scheme": "http",
            "server": ("test", 80),
            "client": ("test", 1),
            "headers": [(b"content-type", b"multipart/form-data; boundary=x")],
        }
        anyio.run(keyed.app, scope, receive, send)
        assert sent[0]["status"] == 401 and pulled == 0


class TestOrigins:
    def test_a_cross_origin_post_without_a_key_is_refused(self, keyed: TestClient) -> None:
        response = post(keyed, {"Origin": EVIL})
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden_origin"
        # With a key too: a foreign page is not a client of ours.
        assert post(keyed, {"Origin": EVIL, **bearer(KEY)}).status_code == 403

    def test_without_keys_a_foreign_page_still_cannot_post(
        self, app_client: TestClient, fake_registration
    ) -> None:
        assert post(app_client, {"Origin": EVIL}).status_code == 403
        assert app_client.delete("/jobs/x", headers={"Origin": EVIL}).status_code == 403
        assert post(app_client).status_code == 202  # curl, scripts: no Origin
        assert post(app_client, {"Origin": "http://testserver"}).status_code == 202  # /docs

    def test_an_allowed_origin_gets_cors_headers(self, keyed: TestClient) -> None:
        created = post(keyed, {"Origin": FRIEND, **bearer(KEY)})
        assert created.status_code == 202, created.text
        assert created.headers["access-control-allow-origin"] == FRIEND
        preflight = keyed.options(
            "/separate",
            headers={
                "Origin": FRIEND,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == FRIEND
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        foreign = keyed.get("/healthz", headers={"Origin": EVIL})
        assert "access-control-allow-origin" not in foreign.headers

    def test_no_cors_policy_by_default(self, app_client: TestClient) -> None:
        response = app_client.get("/healthz", headers={"Origin": FRIEND})
        assert "access-control-allow-origin" not in response.headers


class TestExposure:
    @pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "api.example.com"])
    def test_beyond_loopback_without_keys_is_refused(self, host: str) -> None:
        with pytest.raises(UnsafeExposure, match="LATSEP_API_KEYS"):
            check_exposure(Settings(), host)

    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]"])
    def test_loopback_needs_no_key(self, host: str) -> None:
        check_exposure(Settings(), host)

    def test_keys_or_an_explicit_opt_out_allow_it(self, caplog) -> None:
        check_exposure(Settings(api_keys=KEY), "0.0.0.0")
        check_exposure(Settings(allow_unauthenticated=True), "0.0.0.0")
        assert "without API keys" in caplog.text

    def test_weak_keys_are_refused(self) -> None:
        with pytest.raises(ValueError, match="16 characters"):
            Settings(api_keys="short")

    def test_latsep_api_refuses_to_start(self, settings: Settings) -> None:
        env = settings_env(settings)
        env.pop("LATSEP_API_KEYS", None)
        done = subprocess.run(
            [sys.executable, "-m", "latsep", "api", "--host", "0.0.0.0", "--port", "0"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert "refusing to listen on 0.0.0.0 without API keys" in done.stderr
