"""Jobs: submit a mixture, follow it, cancel or delete it."""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from latsep.jobs import (
    SEED_MAX,
    Consistency,
    JobRequest,
    Search,
    SeparationOptions,
    fetch_job,
    queue_name,
)
from latsep.methods import DEFAULT_METHOD, METHODS
from latsep.service.deps import CatalogDep, SettingsDep, StoreDep
from latsep.service.errors import ApiError, bad_parameter, error_responses
from latsep.service.schemas import JobCreated, JobDeleted, JobPublic
from latsep.service.submission import (
    accept,
    check_options,
    reference_uploads,
    referenced_sources,
)
from latsep.service.views import job_public, load_job

router = APIRouter(tags=["jobs"])


# No `encoding: {file: {contentType: audio/*}}`: a wildcard media type is no type a client
# (or schemathesis' stateful tests) can send; `file` takes any bytes, the API decodes them.
_REFERENCE_DOC = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "additionalProperties": {
                        "type": "string",
                        "format": "binary",
                        "description": "`reference_<source>`: the true stem of <source>, to "
                        "score the separation (SDR, SI-SDR, oracle best-of-N). Give one per "
                        "separated source, or none.",
                    }
                },
            }
        }
    }
}


@router.post(
    "/separate",
    status_code=202,
    response_model=JobCreated,
    responses=error_responses(400, 413, 415, 422, 503),
    openapi_extra=_REFERENCE_DOC,
)
async def submit_separation(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    catalog: CatalogDep,
    file: Annotated[
        UploadFile, File(description="The mixture (a plain sum of the sources), any format.")
    ],
    method: Annotated[
        str,
        Form(
            description=f"One of {', '.join(METHODS)}; default `{DEFAULT_METHOD}`, the "
            "best by the benchmark."
        ),
    ] = DEFAULT_METHOD,
    sources: Annotated[
        str | None,
        Form(
            description="Comma-separated sources, e.g. `bass,drums`. Default: those the "
            "`reference_<source>` files name, else all the bundle's sources for methods that "
            "separate any number, else `bass,drums` (see /methods: `defaults.sources`)."
        ),
    ] = None,
    num_candidates: Annotated[
        int | None,
        Form(
            ge=1,
            description="Candidates drawn; the most consistent wins. Default: the "
            "bundle's for the method (see /methods), else LATSEP_DEFAULT_NUM_CANDIDATES.",
        ),
    ] = None,
    search: Annotated[
        Search | None,
        Form(description="Default: the bundle's for the method, else `sample`."),
    ] = None,
    temperature: Annotated[
        float | None,
        Form(
            gt=0,
            allow_inf_nan=False,
            description="Prior temperature. Default: the bundle's, else 1.",
        ),
    ] = None,
    top_k: Annotated[
        int | None, Form(ge=1, description="Prior top-k. Default: the bundle's, else none.")
    ] = None,
    likelihood_weight: Annotated[
        float | None,
        Form(
            gt=0,
            allow_inf_nan=False,
            description="Exponent w of the likelihood (posterior ∝ Π p_i · L^w); must be 1 for "
            "mlass-bp with 3 or more sources. Default: the bundle's, else 1.",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        Form(
            ge=0,
            le=SEED_MAX,
            description="Same seed, same stems; 0 to 2^64 - 1. Default: random, reported.",
        ),
    ] = None,
    consistency: Annotated[
        Consistency,
        Form(
            description="`ensemble` (default): Wiener masks from all candidates' squared "
            "mean magnitude; "
            "`wiener`: masks from the most mixture-consistent candidate (both sum to the "
            "mixture); `none`: that candidate's raw decoded sources."
        ),
    ] = "ensemble",
) -> JobCreated:
    """Upload a mixture and queue its separation; returns at once with the job's id.

    The upload (file plus references) may not exceed `LATSEP_MAX_UPLOAD_BYTES`, nor its
    decoded duration `LATSEP_MAX_DURATION_SECONDS`. Add `reference_<source>` files to get
    museval SDR, SI-SDR and the oracle best-of-N for each source.
    """
    wanted = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
    chosen = None
    if wanted is None:  # the references name the sources, when they name a servable set
        named = await referenced_sources(request)
        try:
            chosen = catalog.resolve(method, named) if named else None
        except ApiError:
            chosen = None  # the references' own check says what is wrong with them
    if chosen is None:
        chosen = catalog.resolve(method, wanted)
    asked = SeparationOptions(
        num_candidates=num_candidates,
        search=search,
        temperature=temperature,
        top_k=top_k,
        likelihood_weight=likelihood_weight,
        seed=seed if seed is not None else secrets.randbelow(2**31),
        consistency=consistency,
    )
    resolved = asked.resolve(
        catalog.separation_defaults(method, chosen), settings.default_num_candidates
    )
    if resolved.num_candidates > settings.max_num_candidates:
        given = "" if num_candidates is not None else " (the bundle's default)"
        raise bad_parameter(
            f"num_candidates{given} is {resolved.num_candidates}; it is at most "
            f"{settings.max_num_candidates}"
        )
    check_options(method, resolved, len(chosen))  # bundle defaults included
    options = SeparationOptions(**resolved.model_dump())  # as asked, filled in
    references = await reference_uploads(request, chosen)
    mixture = await file.read()
    ref_bytes = {s: await f.read() for s, f in references.items()}
    job_request = JobRequest(
        job_id=uuid.uuid4().hex,
        method=method,
        sources=chosen,
        options=options,
        resolved=resolved,
        references=list(ref_bytes),
        filename=file.filename or "",
        upload_bytes=len(mixture) + sum(len(b) for b in ref_bytes.values()),
        queue=queue_name(settings.queue_name, method),
    )
    await run_in_threadpool(accept, settings, store, job_request, mixture, ref_bytes)
    job_id = job_request.job_id
    return JobCreated(job_id=job_id, url=f"/jobs/{job_id}", events_url=f"/jobs/{job_id}/events")


@router.get("/jobs/{job_id}", response_model=JobPublic, responses=error_responses(404))
def get_job(job_id: str, store: StoreDep) -> JobPublic:
    """Status, progress (0..1), timings; stems' URLs and scores once finished."""
    return job_public(store, job_id)


@router.delete("/jobs/{job_id}", response_model=JobDeleted, responses=error_responses(404))
def delete_job(job_id: str, store: StoreDep, settings: SettingsDep) -> JobDeleted:
    """Cancel a queued job (at once) or a running one (at its next progress step: status
    `canceling` until the worker stops); delete a job that already ended, stems included.
    """
    request, state = load_job(store, job_id)
    redis = store.redis
    if state.status == "queued":
        store.request_cancel(job_id, settings.result_ttl_seconds)
        job = fetch_job(redis, job_id)
        if job is not None and not job.is_canceled:
            job.cancel()
        store.delete_uploads(job_id, request.references)
        return JobDeleted(job_id=job_id, status="canceled")
    if state.status == "started":
        store.request_cancel(job_id, settings.result_ttl_seconds)
        return JobDeleted(job_id=job_id, status="canceling")
    job = fetch_job(redis, job_id)
    if job is not None:
        job.delete()
    store.delete_job(job_id, request.sources)
    return JobDeleted(job_id=job_id, status="deleted")
