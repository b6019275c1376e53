"""Who may call the API: optional API keys, an origin check for browsers, and a refusal to
listen beyond loopback unprotected.

- API keys (`LATSEP_API_KEYS`): every request but the health checks and the API's own
  documentation carries `Authorization: Bearer <key>`, else 401 — decided before the body
  is read, so an anonymous client cannot make the API parse a 100 MB upload.
- Origins (`LATSEP_CORS_ORIGINS`): a multipart POST is a CORS "simple" request, which a
  browser sends cross-origin without asking first; any web page a user opens could submit
  or delete jobs on a service the user can reach. Unsafe requests whose `Origin` is neither
  the API's own nor an allowed one are refused with 403 (clients that are not browsers send
  no Origin and are unaffected); Starlette's CORSMiddleware answers the allowed origins'
  preflights and headers.
- `check_exposure`: `latsep api`/`serve` refuse a non-loopback address without keys unless
  `LATSEP_ALLOW_UNAUTHENTICATED` says a proxy in front authenticates.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Receive, Scope, Send

from latsep.service.errors import error_body
from latsep.settings import Settings

log = logging.getLogger(__name__)

# Open without a key: orchestrators' probes and the API's own documentation.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/"}
)
# Static files: the web page's and the docs' scripts and styles (the page asks for the key).
PUBLIC_PREFIXES = ("/static/",)

_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class AccessMiddleware:
    """401 without a valid API key (when keys are set); 403 for unsafe cross-origin requests
    from origins not allowed. OPTIONS passes: preflights carry no credentials and no data."""

    def __init__(self, app: ASGIApp, keys: Sequence[str], origins: Sequence[str]) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        origin = headers.get("origin", b"").decode("latin-1").rstrip("/")
        if (
            origin
            and scope["method"] in _UNSAFE_METHODS
            and not self._origin_allowed(origin, headers.get("host", b"").decode("latin-1"))
        ):
            message = (
                f"requests from web pages of {origin} are not allowed; the operator can allow "
                "that origin with LATSEP_CORS_ORIGINS"
            )
            await _send_error(send, 403, "forbidden_origin", message)
            return
        if self.keys and not is_public(scope["path"]) and not self._authorized(headers):
            message = "an API key is required: send `Authorization: Bearer <key>`"
            if "authorization" in headers:
                message = "the API key is not valid"
            await _send_error(
                send, 401, "unauthorized", message, [(b"www-authenticate", b"Bearer")]
            )
            return
        await self.app(scope, receive, send)

    def _origin_allowed(self, origin: str, host: str) -> bool:
        # The API's own pages (/docs) post from its own origin.
        return origin in self.origins or (bool(host) and urlsplit(origin).netloc == host)

    def _authorized(self, headers: dict[str, bytes]) -> bool:
        scheme, _, token = headers.get("authorization", b"").partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return False
        token = token.strip()
        # Compare with every key, in constant time, so timing tells nothing about any key.
        matches = [hmac.compare_digest(token, key) for key in self.keys]
        return any(matches)


async def _send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(error_body(status, code, message)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname: it may resolve to anything


class UnsafeExposure(SystemExit):
    """The API would listen beyond loopback with no authentication."""


def check_exposure(settings: Settings, host: str) -> None:
    """Refuse (and log why) to serve on a non-loopback `host` without API keys."""
    if is_loopback(host) or settings.api_key_list:
        return
    if settings.allow_unauthenticated:
        log.warning(
            "the API listens on %s without API keys (LATSEP_ALLOW_UNAUTHENTICATED): anyone "
            "who reaches it can submit, read and delete jobs",
            host,
        )
        return
    message = (
        f"refusing to listen on {host} without API keys: anyone who reaches it could submit, "
        "read and delete jobs. Set LATSEP_API_KEYS (comma-separated keys of 16+ characters), "
        "listen on 127.0.0.1, or set LATSEP_ALLOW_UNAUTHENTICATED=true when a proxy in front "
        "authenticates"
    )
    log.error(message)
    raise UnsafeExposure(message)


def document_access(app: FastAPI, *, with_keys: bool) -> None:
    """Put the bearer scheme (when keys are set) and the 401/403 answers in the OpenAPI
    document, so clients and schema-driven tests know them."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        if with_keys:
            schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["apiKey"] = {"type": "http", "scheme": "bearer"}
        for path, operations in spec.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                if method.upper() in _UNSAFE_METHODS:
                    responses["403"] = {
                        "description": "a web page of a foreign origin",
                        "content": error,
                    }
                if with_keys and not is_public(path):
                    operation["security"] = [{"apiKey": []}]
                    responses["401"] = {"description": "no or a wrong API key", "content": error}
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
