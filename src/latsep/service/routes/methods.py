"""Methods: what the running workers can serve right now."""

from __future__ import annotations

from fastapi import APIRouter

from latsep.service.deps import CatalogDep
from latsep.service.schemas import MethodsPublic

router = APIRouter(tags=["methods"])


@router.get("/methods", response_model=MethodsPublic)
def list_methods(catalog: CatalogDep) -> MethodsPublic:
    """Methods served by live workers, with their sources, how many a request may name, the
    sample rate of the stems and the bundles behind them. Empty when no worker runs.
    """
    return MethodsPublic(methods=catalog.methods(), workers=len(catalog.workers))
