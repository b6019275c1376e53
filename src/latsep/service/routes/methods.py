"""Methods: what the running workers can serve right now."""

from __future__ import annotations

from fastapi import APIRouter

from latsep.service.deps import CatalogDep, SettingsDep
from latsep.service.schemas import MethodsPublic

router = APIRouter(tags=["methods"])


@router.get("/methods", response_model=MethodsPublic)
def list_methods(catalog: CatalogDep, settings: SettingsDep) -> MethodsPublic:
    """Methods served by live workers, with their sources, how many a request may name, the
    sample rate of the stems, the bundles behind them and the option defaults a request
    gets (the bundle's tuned values, else the global ones). Empty when no worker runs.
    """
    methods = catalog.methods(settings.default_num_candidates)
    return MethodsPublic(methods=methods, workers=len(catalog.workers))
