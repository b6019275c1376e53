"""The web page at `/` and the offline API docs, over HTTP (the browser test drives the page
itself: test_browser.py)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from redis import Redis

from latsep.service.app import create_app
from latsep.settings import Settings

KEY = "k" * 16 + "-page"


def local_links(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_the_page_and_its_assets_come_from_this_api(app_client: TestClient) -> None:
    page = app_client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r"https?://", page.text), "the page must load nothing from outside"
    links = local_links(page.text)
    assert "/static/web/app.js" in links and "/static/web/app.css" in links
    for link in links:
        if link.startswith("/static/"):
            assert app_client.get(link).status_code == 200, link
    script = app_client.get("/static/web/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert not re.search(r"https?://", script.text)
    assert "/" not in app_client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_load_their_assets_from_a_package_not_a_cdn(app_client: TestClient, path: str) -> None:
    page = app_client.get(path)
    assert page.status_code == 200
    assert not re.search(r"https?://", page.text), page.text
    scripts = [link for link in local_links(page.text) if link.endswith(".js")]
    assert scripts and all(link.startswith("/static/docs/") for link in scripts)
    for link in local_links(page.text):
        response = app_client.get(link)
        assert response.status_code == 200 and len(response.content) > 0, link


def test_with_api_keys_the_page_and_docs_stay_open(settings: Settings, redis: Redis) -> None:
    locked = settings.model_copy(update={"api_keys": KEY})
    with TestClient(create_app(locked, redis)) as client:
        for path in ("/", "/static/web/app.js", "/docs", "/static/docs/swagger-ui.css"):
            assert client.get(path).status_code == 200, path
        assert client.get("/methods").status_code == 401
        for sneaky in ("/static/../methods", "/static/%2e%2e/methods", "/static/web/../../jobs/x"):
            assert client.get(sneaky).status_code in (401, 404), sneaky
        spec = client.get("/openapi.json").json()
        assert spec["paths"]["/methods"]["get"]["security"] == [{"apiKey": []}]


def test_every_field_and_parameter_has_a_description_and_a_valid_example(
    app_client: TestClient,
) -> None:
    spec = app_client.get("/openapi.json").json()
    missing = []
    for name, schema in spec["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            if not prop.get("description"):
                missing.append(f"{name}.{field}: description")
            refers = "$ref" in prop or "$ref" in prop.get("items", {})
            refers = refers or any("$ref" in p for p in prop.get("anyOf", []))
            if not prop.get("examples") and not refers:
                missing.append(f"{name}.{field}: example")
            for example in prop.get("examples", []):
                if name.startswith("Body_") and field == "file":
                    continue  # binary: the example names a file
                validator = Draft202012Validator({**prop, "components": spec["components"]})
                errors = [e.message for e in validator.iter_errors(example)]
                assert not errors, (name, field, example, errors)
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                where = f"{method.upper()} {path} {param['name']}"
                if not param.get("description"):
                    missing.append(f"{where}: description")
                if "example" not in param:
                    missing.append(f"{where}: example")
    assert not missing, missing
