"""Response bodies of the HTTP API (the request is a multipart form; see routes/jobs.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from latsep.jobs import OracleResult, SeparationOptions

JobStatusName = Literal["queued", "started", "finished", "failed", "canceled"]


class ErrorDetail(BaseModel):
    status: int
    code: str = Field(description="too_large, too_long, not_audio, bad_audio, bad_parameter, ...")
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class JobCreated(BaseModel):
    job_id: str
    status: JobStatusName = "queued"
    url: str = Field(description="GET this for the job's status")
    events_url: str


class StemLinks(BaseModel):
    wav: str = Field(
        description="32-bit float WAV at the upload's sample rate and channels "
        "(add &bit_depth=16 or 24 for integer WAV)"
    )
    flac: str = Field(
        description="24-bit FLAC at the upload's sample rate and channels (&bit_depth=16)"
    )


class Timings(BaseModel):
    submitted_at: float
    enqueued_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    queue_wait_s: float | None = None
    run_s: float | None = None
    stages: dict[str, float] = Field(
        default_factory=dict, description="worker-side seconds: decode, separate, score, encode"
    )


class JobPublic(BaseModel):
    """A job as clients see it. Scores appear only when references were uploaded."""

    job_id: str
    status: JobStatusName
    progress: float = Field(ge=0, le=1)
    stage: str = Field(
        description="decoding, separating N/T tokens, decoding stems B/M blocks, "
        "masking B/M blocks, scoring; queued, done, failed, canceled"
    )
    eta_seconds: float | None = Field(
        default=None, description="seconds left at the pace so far, while running"
    )
    cancel_requested: bool = False
    error: str | None = None
    method: str
    sources: list[str]
    options: SeparationOptions = Field(
        description="what the job runs with: the options asked for, the rest from the "
        "serving bundle's defaults for the method, else the global defaults"
    )
    filename: str
    duration_seconds: float
    timings: Timings
    sample_rate: int | None = Field(
        default=None, description="Hz of the stems: the upload's own (the models run at 22,050)"
    )
    channels: int | None = Field(default=None, description="of the stems: the upload's")
    bundle: str | None = None
    device: str | None = None
    chosen_candidate: int | None = None
    candidate_consistency: list[float] | None = Field(
        default=None, description="per candidate ‖y − Σ x̂_i‖ / ‖y‖ (lower is better)"
    )
    stems: dict[str, StemLinks] | None = None
    zip_url: str | None = None
    events_url: str
    sdr: dict[str, float | None] | None = Field(
        default=None, description="museval BSSEval v4 SDR (dB), median over 1-s frames"
    )
    si_sdr: dict[str, float | None] | None = Field(default=None, description="SI-SDR (dB)")
    oracle: OracleResult | None = Field(
        default=None,
        description="the best of the N candidates chosen WITH the references (an upper bound)",
    )


class JobDeleted(BaseModel):
    job_id: str
    status: Literal["canceled", "canceling", "deleted"]


class MethodPublic(BaseModel):
    name: str
    about: str = Field(default="", description="what the method is, in one sentence")
    recommended: bool = Field(default=False, description="the method a request naming none gets")
    sources: list[str] = Field(description="sources some live worker separates with it")
    max_sources: int
    searches: list[str] = Field(
        description="the `search` values it takes: beam search exists for the two-source "
        "methods only"
    )
    sample_rate: int
    bundles: list[str]
    workers: int
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="what an option left out of POST /separate becomes: num_candidates, "
        "search, temperature, top_k, likelihood_weight (the bundle's tuned values, else the "
        "global defaults) with the sources a request naming none separates",
    )
    defaults_by_sources: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="the same, per number of sources (a method's tuned options may differ "
        "between two and three sources)",
    )


class MethodsPublic(BaseModel):
    methods: list[MethodPublic]
    workers: int


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    workers: int
    methods: list[str]
