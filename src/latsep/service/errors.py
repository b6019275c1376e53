"""Errors as JSON with a message a client can act on, and one status per kind of mistake.

413 too large / too long, 415 not decodable audio, 422 bad parameters, 404 unknown job,
409 not ready, 503 no worker / queue full. Every error body is `{"error": {"status", "code",
"message"}}` (schema `ErrorBody`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from latsep.audio import AudioError, AudioTooLong, EmptyAudio, UndecodableAudio
from latsep.jobs.limits import AudioTooLarge
from latsep.jobs.status import user_facing

log = logging.getLogger(__name__)


class ApiError(StarletteHTTPException):
    """An error with a status, a machine-readable code and a human message."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(status_code=status_code, detail=message)
        self.code = code
        self.message = message


STORE_UNAVAILABLE = "the job store (Redis) is unavailable; try again later"


def too_large(message: str) -> ApiError:
    return ApiError(413, "too_large", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def not_ready(message: str) -> ApiError:
    return ApiError(409, "not_ready", message)


def bad_parameter(message: str) -> ApiError:
    return ApiError(422, "bad_parameter", message)


def unavailable(message: str) -> ApiError:
    return ApiError(503, "unavailable", message)


def from_audio_error(exc: AudioError, what: str) -> ApiError:
    """Map the audio module's typed errors to statuses: the file is the thing at fault."""
    message = f"{what}: {user_facing(str(exc))}"
    if isinstance(exc, AudioTooLarge):
        return ApiError(413, "too_large", message)
    if isinstance(exc, AudioTooLong):
        return ApiError(413, "too_long", message)
    if isinstance(exc, UndecodableAudio | EmptyAudio):
        return ApiError(415, "not_audio", message)
    return ApiError(422, "bad_audio", message)  # silent, NaN/inf


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message}}


_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route on the path only
            # (GET /jobs/{id}), though DELETE is served by another route on the same path.
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
        code = getattr(exc, "code", None) or _CODES.get(exc.status_code, "error")
        message = getattr(exc, "message", None) or str(exc.detail)
        return JSONResponse(
            error_body(exc.status_code, code, message),
            status_code=exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(RedisError)
    async def _redis_error(request: Request, exc: RedisError) -> JSONResponse:
        # The details (host, port, socket errors) go to the log, not to the client.
        log.warning("%s %s: Redis error: %r", request.method, request.url.path, exc)
        return JSONResponse(
            error_body(503, "unavailable", STORE_UNAVAILABLE),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path"))
            parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else err.get("msg", ""))
        message = "; ".join(parts) or "invalid request"
        return JSONResponse(error_body(422, "bad_parameter", message), status_code=422)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on the request's path (asked of the router itself, as
    included routers nest), and OPTIONS."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return [*allowed, "OPTIONS"]


_DESCRIPTIONS = {
    400: "the body is not a valid multipart form",
    404: "unknown job (or expired)",
    409: "the job is not finished",
    413: "upload too large (bytes, or samples once decoded) or too long (decoded duration)",
    415: "a file is not decodable audio (garbage, empty, truncated)",
    422: "bad parameters (method, sources, options, silent audio)",
    503: "no worker is running, or the queue is full",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, all with the ErrorBody schema."""
    from latsep.service.schemas import ErrorBody

    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}
