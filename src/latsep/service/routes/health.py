"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from latsep.service.deps import StoreDep
from latsep.service.errors import STORE_UNAVAILABLE, unavailable
from latsep.service.schemas import ErrorBody, Health, Readiness

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The API process answers (it checks nothing else)."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": ErrorBody, "description": "Redis down or no live worker"}},
)
def readyz(store: StoreDep) -> Readiness:
    """Ready when Redis answers and at least one worker's heartbeat is fresh."""
    try:
        store.redis.ping()
        workers = store.live_workers()
    except RedisError as exc:
        log.warning("readyz: Redis error: %r", exc)  # host and port: the log's, not the client's
        raise unavailable(STORE_UNAVAILABLE) from exc
    if not workers:
        raise unavailable("no worker is running")
    methods = sorted({m for w in workers for b in w.bundles for m in b.methods})
    return Readiness(workers=len(workers), methods=methods)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Prometheus text format: jobs by state, queue depth, workers, job durations."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
