"""The FastAPI application: wiring only (routers, errors, limits, the periodic reaper).

Run it with `latsep api` (or `uvicorn --factory latsep.service.app:create_app`). It imports
no torch: the API image has none, a test asserts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from redis import Redis
from starlette.middleware.cors import CORSMiddleware

import latsep
from latsep.jobs import JobStore, connect, latsep_queues, reap_abandoned
from latsep.service.docs import document_fields, install_docs
from latsep.service.errors import install_error_handlers
from latsep.service.metrics import build_registry
from latsep.service.routes import health, jobs, methods, results
from latsep.service.security import AccessMiddleware, document_access
from latsep.service.uploads import BodyLimitMiddleware
from latsep.service.web import install_web
from latsep.settings import Settings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """
Separate a music mixture into its stems with latent generative methods
(LASS, LQ-VAE, LQ-VAE+LASS hybrid, MLASS-BP, MLASS-PE).

Flow: `POST /separate` (multipart) → `202 {job_id}` → follow `GET /jobs/{id}` or the
server-sent events of `GET /jobs/{id}/events` → download `GET /jobs/{id}/stems/{source}`
or `GET /jobs/{id}/stems.zip`. Errors are JSON `{"error": {"status", "code", "message"}}`.
"""


def create_app(settings: Settings | None = None, redis: Redis | None = None) -> FastAPI:
    settings = settings or get_settings()
    redis = (
        redis
        if redis is not None
        else connect(settings.effective_redis_url, **settings.redis_timeouts())
    )
    store = JobStore(redis, settings.namespace)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_reap_forever(store, settings))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="latsep",
        version=latsep.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # offline /docs and /redoc: install_docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.metrics = build_registry(store, settings.queue_name)
    # The last added runs first: CORS answers preflights and decorates every answer, then
    # access is decided, then the body is counted as it arrives.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(
        AccessMiddleware, keys=settings.api_key_list, origins=settings.cors_origin_list
    )
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["Content-Disposition", "Retry-After"],
        )
    install_error_handlers(app)
    app.include_router(jobs.router)
    app.include_router(results.router)
    app.include_router(methods.router)
    app.include_router(health.router)
    document_access(app, with_keys=bool(settings.api_key_list))
    document_fields(app)
    install_docs(app)
    install_web(app)
    return app


async def _reap_forever(store: JobStore, settings: Settings) -> None:
    """Requeue or fail the jobs of workers that died, even when nobody polls them."""
    while True:
        await asyncio.sleep(settings.reaper_interval_seconds)
        try:
            names = [q.name for q in latsep_queues(store.redis, settings.queue_name)]
            await run_in_threadpool(reap_abandoned, store.redis, store, names)
        except Exception:
            log.exception("reaper sweep failed")
