"""The JSON records a job leaves in Redis: what was asked (API → worker), what came out
(worker → API)."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from latsep.jobs.options import ResolvedOptions, SeparationOptions


class JobRequest(BaseModel):
    """What a client asked for; written by the API, read by the worker."""

    job_id: str
    method: str
    sources: list[str]
    options: SeparationOptions
    # The options the API resolved against the serving bundle's defaults at submission: the
    # worker runs with exactly these (null in a job queued by an older API: it resolves
    # `options` itself, as `latsep separate` does).
    resolved: ResolvedOptions | None = None
    references: list[str] = Field(default_factory=list, description="sources with references")
    filename: str = ""
    upload_bytes: int = 0
    duration_seconds: float = 0.0
    queue: str = ""
    submitted_at: float = Field(default_factory=time.time)


class OracleResult(BaseModel):
    """The best of the N candidates *judged with the references* (what the papers report)."""

    index: int
    sdr: dict[str, float | None]
    si_sdr: dict[str, float | None]


class JobResult(BaseModel):
    """What a finished job produced, besides the stems' audio."""

    sources: list[str]
    sample_rate: int = Field(description="Hz of the stems: the upload's own")
    num_samples: int
    channels: int = Field(default=1, description="the stems', the upload's")
    model_sample_rate: int | None = Field(
        default=None, description="Hz the models ran at (mono); scores are computed there"
    )
    bundle: str
    device: str
    chosen_candidate: int
    candidate_consistency: list[float]
    timings: dict[str, float]
    options: ResolvedOptions | None = Field(default=None, description="what the job ran with")
    sdr: dict[str, float | None] | None = None
    si_sdr: dict[str, float | None] | None = None
    oracle: OracleResult | None = None
