"""The API's own documentation, offline: Swagger UI and ReDoc served from a package's files
(`fastapi-offline` ships them) instead of a CDN, and a description plus an example on every
field of the OpenAPI document.

The texts live here rather than on each pydantic field so that the response models stay
short; `document_fields` fills only what a field lacks, so a description written on the
model wins. A test holds every field and parameter to having both.
"""

from __future__ import annotations

import copy
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from latsep.methods import METHOD_TABLE, METHODS

DOCS_ASSETS = "/static/docs"  # under the open /static/ prefix (security.PUBLIC_PREFIXES)

JOB_ID = "9c1f0e5ab7d94e3c8a6b2d4f1e0c7a55"
_JOB = f"/jobs/{JOB_ID}"
_SDR = {"bass": 6.8, "drums": 4.1}
_OPTIONS = {
    "num_candidates": 4,
    "search": "sample",
    "temperature": 1.0,
    "top_k": None,
    "likelihood_weight": 1.0,
    "seed": 1234,
    "consistency": "ensemble",
}
_DEFAULTS = {**_OPTIONS, "sources": ["bass", "drums"]}
del _DEFAULTS["seed"], _DEFAULTS["consistency"]

# {schema: {field: (description, example)}}; a description of None keeps the model's own.
FIELDS: dict[str, dict[str, tuple[str | None, Any]]] = {
    "Body_submit_separation_separate_post": {
        "file": (None, "mix.wav"),
        "method": (None, METHODS[0]),
        "sources": (None, "bass,drums"),
        "num_candidates": (None, 4),
        "search": (None, "sample"),
        "temperature": (None, 1.0),
        "top_k": (None, 64),
        "likelihood_weight": (None, 1.0),
        "seed": (None, 1234),
        "consistency": (None, "ensemble"),
    },
    "ErrorBody": {
        "error": (
            "What went wrong",
            {"status": 404, "code": "not_found", "message": f"no job {JOB_ID!r}"},
        ),
    },
    "ErrorDetail": {
        "status": ("The HTTP status, repeated", 415),
        "code": (None, "not_audio"),
        "message": ("What went wrong, in words a user can act on", "the upload is not audio"),
    },
    "HTTPValidationError": {
        "detail": (
            "FastAPI's default shape; this API answers 422 with an ErrorBody instead",
            [{"loc": ["body", "seed"], "msg": "Input should be >= 0", "type": "greater_than"}],
        ),
    },
    "ValidationError": {
        "loc": ("Where the bad value is", ["body", "seed"]),
        "msg": ("What is wrong with it", "Input should be greater than or equal to 0"),
        "type": ("The kind of error", "greater_than_equal"),
        "input": ("The value given", -1),
        "ctx": ("The rule broken", {"ge": 0}),
    },
    "Health": {"status": ("Always `ok` while the process answers", "ok")},
    "Readiness": {
        "status": ("`ready`: a worker serves at least one method", "ready"),
        "workers": ("Live workers", 1),
        "methods": ("Methods they serve", list(METHODS)),
    },
    "JobCreated": {
        "job_id": ("The job's id, for every /jobs/{job_id} URL", JOB_ID),
        "status": ("Always `queued` on creation", "queued"),
        "url": (None, _JOB),
        "events_url": ("GET this for server-sent progress events", f"{_JOB}/events"),
    },
    "JobDeleted": {
        "job_id": ("The job's id", JOB_ID),
        "status": (
            "`canceled` (was queued), `canceling` (running; stops at its next step), "
            "`deleted` (had ended; its stems are gone)",
            "canceled",
        ),
    },
    "StemLinks": {
        "wav": (None, f"{_JOB}/stems/bass?format=wav"),
        "flac": (None, f"{_JOB}/stems/bass?format=flac"),
    },
    "Timings": {
        "submitted_at": ("Unix time of the upload", 1764750000.12),
        "enqueued_at": ("Unix time it entered the queue", 1764750000.15),
        "started_at": ("Unix time a worker took it", 1764750000.4),
        "ended_at": ("Unix time it ended", 1764750012.9),
        "queue_wait_s": ("Seconds spent queued", 0.25),
        "run_s": ("Seconds spent running", 12.5),
        "stages": (
            None,
            {
                "decode_s": 0.05,
                "separate_s": 11.8,
                "score_s": 0.4,
                "encode_s": 0.2,
                "total_s": 12.5,
            },
        ),
    },
    "JobPublic": {
        "job_id": ("The job's id", JOB_ID),
        "status": ("queued, started, finished, failed or canceled", "finished"),
        "progress": ("Fraction done, 0 to 1", 1.0),
        "stage": ("What it is doing now, in words", "finished"),
        "cancel_requested": ("A DELETE asked it to stop", False),
        "error": ("Why it failed (null unless failed)", None),
        "method": ("The separation method", METHODS[0]),
        "sources": ("The sources separated, in order", ["bass", "drums"]),
        "options": (None, _OPTIONS),
        "filename": ("The uploaded file's name", "mix.wav"),
        "duration_seconds": ("Duration of the upload", 12.0),
        "timings": ("When each step happened and how long it took", None),
        "sample_rate": ("Sample rate of the stems (Hz), once finished: the upload's", 44100),
        "channels": ("Channels of the stems, once finished: the upload's", 2),
        "eta_seconds": ("Seconds left at the pace so far, while running", 42.5),
        "bundle": ("The model bundle that ran it", "default-plain"),
        "device": ("Where it ran", "cuda:0"),
        "chosen_candidate": ("Index of the candidate the stems come from", 2),
        "candidate_consistency": (None, [0.31, 0.27, 0.22, 0.29]),
        "stems": (
            "Per source, where to download it (once finished)",
            {
                "bass": {
                    "wav": f"{_JOB}/stems/bass?format=wav",
                    "flac": f"{_JOB}/stems/bass?format=flac",
                },
            },
        ),
        "zip_url": ("All stems in one zip (once finished)", f"{_JOB}/stems.zip"),
        "events_url": ("Server-sent progress events", f"{_JOB}/events"),
        "sdr": (None, _SDR),
        "si_sdr": (None, {"bass": 6.2, "drums": 3.5}),
        "oracle": (None, {"index": 1, "sdr": _SDR, "si_sdr": {"bass": 6.2, "drums": 3.5}}),
    },
    "OracleResult": {
        "index": ("The candidate the references rate best", 1),
        "sdr": ("Its SDR (dB) per source", _SDR),
        "si_sdr": ("Its SI-SDR (dB) per source", {"bass": 6.2, "drums": 3.5}),
    },
    "SeparationOptions": {
        "num_candidates": ("Candidates drawn; the most mixture-consistent one wins", 4),
        "search": ("`sample` (every method) or `beam` (2-source methods)", "sample"),
        "temperature": ("Temperature of the priors", 1.0),
        "top_k": ("Top-k of the priors (null: none)", None),
        "likelihood_weight": ("Exponent w of the likelihood", 1.0),
        "seed": ("The random seed; the same seed gives the same stems", 1234),
        "consistency": ("`ensemble`, `wiener` or `none` (see POST /separate)", "ensemble"),
    },
    "MethodPublic": {
        "name": ("The method, as POST /separate names it", METHODS[0]),
        "about": (None, METHOD_TABLE[METHODS[0]].about),
        "recommended": (None, False),
        "sources": (None, ["bass", "drums"]),
        "max_sources": ("Most sources one request may name", 2),
        "searches": (None, ["sample", "beam", "smc", "mixed"]),
        "sample_rate": ("Sample rate the models run at (Hz)", 22050),
        "bundles": ("The model bundles serving it", ["default-plain"]),
        "workers": ("Live workers serving it", 1),
        "defaults": (None, _DEFAULTS),
        "defaults_by_sources": (None, {"2": _DEFAULTS}),
    },
    "MethodsPublic": {
        "methods": ("One entry per method some live worker serves", None),
        "workers": ("Live workers", 1),
    },
}

# (path, parameter): (description, example)
PARAMETERS: dict[tuple[str, str], tuple[str | None, Any]] = {
    ("*", "job_id"): ("The id POST /separate returned", JOB_ID),
    ("/jobs/{job_id}/stems/{source}", "source"): ("One of the job's sources", "bass"),
    ("/jobs/{job_id}/stems/{source}", "format"): (None, "flac"),
    ("/jobs/{job_id}/stems/{source}", "bit_depth"): (None, "24"),
    ("/jobs/{job_id}/stems.zip", "format"): (None, "flac"),
    ("/jobs/{job_id}/stems.zip", "bit_depth"): (None, "16"),
}


def document_fields(app: FastAPI) -> None:
    """Wrap `app.openapi` (whatever built it) to add the descriptions and examples above."""
    build = app.openapi
    documented: list[int] = []  # ids of the specs already filled in (the builder caches one)

    def openapi() -> dict[str, Any]:
        spec = build()
        if id(spec) not in documented:
            _add_field_docs(spec)
            documented.append(id(spec))
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _add_field_docs(spec: dict[str, Any]) -> None:
    schemas = spec.get("components", {}).get("schemas", {})
    for schema_name, fields in FIELDS.items():
        properties = schemas.get(schema_name, {}).get("properties", {})
        for field, (description, example) in fields.items():
            prop = properties.get(field)
            if prop is None:
                continue
            if description and not prop.get("description"):
                prop["description"] = description
            if example is None and _whole_object(prop):
                continue  # a $ref: the referenced schema's fields carry the examples
            prop.setdefault("examples", [copy.deepcopy(example)])
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            for param in operation.get("parameters", []):
                doc = PARAMETERS.get((path, param["name"])) or PARAMETERS.get(("*", param["name"]))
                if doc is None:
                    continue
                description, example = doc
                if description and not param.get("description"):
                    param["description"] = description
                param.setdefault("example", example)


def _whole_object(prop: dict[str, Any]) -> bool:
    """A field whose schema is another component (directly, or in an array/anyOf)."""
    if "$ref" in prop or "$ref" in prop.get("items", {}):
        return True
    return any("$ref" in p for p in prop.get("anyOf", []))


def install_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """/docs (Swagger UI) and /redoc from the `fastapi_offline` package's files. The app
    must be created with `docs_url=None, redoc_url=None`."""
    assets = files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            # No badge fetched from validator.swagger.io: nothing leaves the host.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
