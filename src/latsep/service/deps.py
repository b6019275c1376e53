"""FastAPI dependencies as `Annotated` aliases; tests override them through `create_app`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis import Redis

from latsep.jobs import JobStore
from latsep.service.catalog import Catalog
from latsep.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


def get_redis(request: Request) -> Redis:
    return get_store(request).redis


def get_catalog(store: Annotated[JobStore, Depends(get_store)]) -> Catalog:
    """What the live workers serve, read fresh for each request (a few small keys)."""
    return Catalog(store.live_workers())


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
RedisDep = Annotated[Redis, Depends(get_redis)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
