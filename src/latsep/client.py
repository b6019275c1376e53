"""A Python client of the latsep HTTP API (httpx only: no torch, no Redis).

    from latsep.client import Client

    result = Client("http://127.0.0.1:8000").separate("mix.wav")  # the default method
    result.wait(on_progress=lambda job: print(f"{job.progress:.0%} {job.stage}"))
    result.download("stems/")  # {"bass": Path("stems/bass.wav"), ...}

`wait` follows the job's server-sent events and falls back to polling if the stream breaks;
a failed or canceled job raises `JobFailed`; any error answer of the API raises `ApiError`
with the API's own code and message. An API key (`LATSEP_API_KEYS` on the server) goes in
`Client(url, api_key=...)` and travels as `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import httpx

from latsep.methods import DEFAULT_METHOD

TERMINAL = ("finished", "failed", "canceled")
DEFAULT_URL = "http://127.0.0.1:8000"


class ApiError(Exception):
    """The API answered with an error (`{"error": {"status", "code", "message"}}`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class JobFailed(Exception):
    """The job ended failed or canceled; `job` says how."""

    def __init__(self, job: Job) -> None:
        reason = f": {job.error}" if job.error else ""
        super().__init__(f"job {job.job_id} {job.status}{reason}")
        self.job = job


@dataclass(frozen=True)
class Job:
    """A job as `GET /jobs/{id}` shows it; `raw` holds every field of the answer."""

    job_id: str
    status: str
    progress: float
    stage: str
    error: str | None = None
    sources: list[str] = field(default_factory=list)
    stems: dict[str, dict[str, str]] | None = None
    zip_url: str | None = None
    sdr: dict[str, float | None] | None = None
    si_sdr: dict[str, float | None] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            job_id=data["job_id"],
            status=data["status"],
            progress=float(data.get("progress", 0.0)),
            stage=str(data.get("stage", data["status"])),
            error=data.get("error"),
            sources=list(data.get("sources", [])),
            stems=data.get("stems"),
            zip_url=data.get("zip_url"),
            sdr=data.get("sdr"),
            si_sdr=data.get("si_sdr"),
            raw=dict(data),
        )

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


ProgressCallback = Callable[[Job], None]


class Client:
    """The API at `url`. Pass `http` (an `httpx.Client`, e.g. FastAPI's TestClient) to reuse
    a connection pool or to talk to an app in-process; `url` is then relative to it."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own_http = http is None
        self.http = http if http is not None else httpx.Client(timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    # --- calls ---------------------------------------------------------------------------

    def methods(self) -> list[dict[str, Any]]:
        """What the live workers serve: `GET /methods`'s `methods`."""
        methods: list[dict[str, Any]] = self._request("GET", "/methods").json()["methods"]
        return methods

    def separate(
        self,
        path: str | Path,
        method: str = DEFAULT_METHOD,
        sources: Sequence[str] | str | None = None,
        *,
        references: Mapping[str, str | Path] | None = None,
        num_candidates: int | None = None,
        search: Literal["sample", "beam", "smc", "mixed"] | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        likelihood_weight: float | None = None,
        seed: int | None = None,
        consistency: Literal["ensemble", "wiener", "none"] | None = None,
    ) -> Result:
        """Upload the mixture at `path` (and the true stems in `references`, to be scored)
        and queue its separation; returns at once. Options left out take the serving
        bundle's defaults for the method (see `methods()`)."""
        if isinstance(sources, str):
            sources = [s.strip() for s in sources.split(",") if s.strip()]
        form: dict[str, str] = {"method": method}
        options = {
            "sources": ",".join(sources) if sources else None,
            "num_candidates": num_candidates,
            "search": search,
            "temperature": temperature,
            "top_k": top_k,
            "likelihood_weight": likelihood_weight,
            "seed": seed,
            "consistency": consistency,
        }
        form.update({k: str(v) for k, v in options.items() if v is not None})
        with ExitStack() as stack:
            files: dict[str, tuple[str, BinaryIO]] = {}
            uploads = {"file": Path(path)}
            uploads.update({f"reference_{s}": Path(p) for s, p in (references or {}).items()})
            for name, file in uploads.items():
                files[name] = (file.name, stack.enter_context(file.open("rb")))
            created = self._request("POST", "/separate", data=form, files=files).json()
        return Result(self, created["job_id"])

    def job(self, job_id: str) -> Job:
        return Job.from_json(self._request("GET", f"/jobs/{job_id}").json())

    def events(self, job_id: str, read_timeout: float = 60.0) -> Generator[tuple[str, dict]]:
        """The job's server-sent events as (name, data) until the stream ends."""
        timeout = httpx.Timeout(30.0, read=read_timeout)  # the server pings every 15 s idle
        with self.http.stream(
            "GET", self._url(f"/jobs/{job_id}/events"), headers=self.headers, timeout=timeout
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise _api_error(response)
            name, data = "message", []
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line[len("event:") :].strip()
                elif line.startswith("data:"):
                    data.append(line[len("data:") :].lstrip())
                elif not line and data:
                    yield name, json.loads("\n".join(data))
                    name, data = "message", []

    def delete(self, job_id: str) -> str:
        """Cancel a queued or running job, or delete an ended one; returns the new status."""
        status: str = self._request("DELETE", f"/jobs/{job_id}").json()["status"]
        return status

    def download_to(self, url: str, target: Path) -> Path:
        """Stream `url` (a path of the API) into the file `target`."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.http.stream("GET", self._url(url), headers=self.headers) as response:
            if response.status_code >= 400:
                response.read()
                raise _api_error(response)
            partial = target.with_name(target.name + ".part")
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
            partial.replace(target)
        return target

    # --- plumbing ------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.url}{path}"

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, self._url(path), headers=self.headers, **kwargs)
        if response.status_code >= 400:
            raise _api_error(response)
        return response


class Result:
    """A submitted job: `wait()` for it, then `download(dir)` its stems."""

    def __init__(self, client: Client, job_id: str) -> None:
        self.client = client
        self.job_id = job_id
        self.job: Job | None = None  # the latest state seen

    def __repr__(self) -> str:
        status = self.job.status if self.job else "submitted"
        return f"Result(job_id={self.job_id!r}, status={status!r})"

    def refresh(self) -> Job:
        self.job = self.client.job(self.job_id)
        return self.job

    def wait(
        self,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        poll_interval: float = 1.0,
    ) -> Job:
        """Block until the job ends; `on_progress(job)` on every change. Returns the finished
        job; raises `JobFailed` (failed or canceled) or `TimeoutError`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self._follow_events(deadline, on_progress)
        while job is None or not job.done:  # no stream, or it broke: poll
            _check(deadline, self.job_id)
            time.sleep(poll_interval)
            job = self.refresh()
            if on_progress is not None:
                on_progress(job)
        if job.status != "finished":
            raise JobFailed(job)
        return job

    def _follow_events(
        self, deadline: float | None, on_progress: ProgressCallback | None
    ) -> Job | None:
        try:
            with closing(self.client.events(self.job_id)) as events:
                return self._read_events(events, deadline, on_progress)
        except httpx.TransportError:
            return None

    def _read_events(
        self,
        events: Iterator[tuple[str, dict]],
        deadline: float | None,
        on_progress: ProgressCallback | None,
    ) -> Job | None:
        for name, data in events:
            if name == "error":
                return None  # the job vanished or the store failed: polling says which
            self.job = Job.from_json(data)
            if on_progress is not None:
                on_progress(self.job)
            if self.job.done:
                return self.job
            _check(deadline, self.job_id)
        return None

    def download(
        self,
        directory: str | Path,
        format: Literal["wav", "flac"] = "wav",
        bit_depth: Literal["16", "24", "float"] | None = None,
    ) -> dict[str, Path]:
        """Write every stem as DIR/<source>.<format> (bit_depth None: float WAV, 24-bit
        FLAC); returns {source: path}. Waits first if the job was not seen finished."""
        job = self.job if self.job is not None and self.job.done else self.wait()
        if job.stems is None:
            raise JobFailed(job)
        directory = Path(directory)
        return {
            source: self.client.download_to(
                links[format] + (f"&bit_depth={bit_depth}" if bit_depth else ""),
                directory / f"{source}.{format}",
            )
            for source, links in job.stems.items()
        }

    def download_zip(self, path: str | Path) -> Path:
        job = self.job if self.job is not None and self.job.done else self.wait()
        if job.zip_url is None:
            raise JobFailed(job)
        return self.client.download_to(job.zip_url, Path(path))

    def cancel(self) -> str:
        return self.client.delete(self.job_id)

    @property
    def sdr(self) -> dict[str, float | None] | None:
        return self.job.sdr if self.job else None


def _check(deadline: float | None, job_id: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError(f"job {job_id} did not end in time")


def _api_error(response: httpx.Response) -> ApiError:
    try:
        error = response.json()["error"]
        return ApiError(int(error["status"]), str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(response.status_code, "http_error", response.text[:200])
