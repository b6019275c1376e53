"""Every client error of DESIGN.md, provoked by a real bad input against a real Redis.

No worker runs here: a registration (what a worker with a 2-source bundle writes) is enough
for the API to validate against; queued jobs simply stay queued.
"""

from __future__ import annotations

import io
import json

import anyio
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from service_support import tone_mix, wav_bytes

from latsep.jobs import JobStore
from latsep.settings import Settings


def mix_wav(seconds: float = 1.0) -> bytes:
    bass, drums = tone_mix(seconds)
    return wav_bytes(bass + drums)


def submit(client: TestClient, data: bytes, name: str = "mix.wav", **fields):
    form = {"method": "lass", **{k: str(v) for k, v in fields.items()}}
    return client.post("/separate", data=form, files={"file": (name, data)})


def assert_error(response, status: int, code: str | None = None, contains: str = "") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status
    if code:
        assert error["code"] == code
    assert contains.lower() in error["message"].lower()


@pytest.mark.usefixtures("fake_registration")
class TestBadAudio:
    def test_garbage_bytes_are_415(self, app_client: TestClient) -> None:
        garbage = np.random.default_rng(0).bytes(5000)
        assert_error(submit(app_client, garbage), 415, "not_audio", "not a readable audio")

    def test_empty_file_is_415(self, app_client: TestClient) -> None:
        assert_error(submit(app_client, b""), 415, "not_audio", "empty")

    def test_truncated_flac_is_415(self, app_client: TestClient) -> None:
        bass, drums = tone_mix(2.0)
        flac = wav_bytes(bass + drums, fmt="FLAC")
        assert_error(submit(app_client, flac[: len(flac) // 2], "mix.flac"), 415, "not_audio")

    def test_header_only_wav_is_415(self, app_client: TestClient) -> None:
        empty = wav_bytes(np.zeros(0, dtype=np.float32))
        assert_error(submit(app_client, empty), 415, "not_audio", "no samples")

    def test_silence_is_422(self, app_client: TestClient) -> None:
        silent = wav_bytes(np.zeros(22050, dtype=np.float32))
        assert_error(submit(app_client, silent), 422, "bad_audio", "silence")

    def test_nan_is_422(self, app_client: TestClient) -> None:
        audio = np.full(1000, np.nan, dtype=np.float32)
        data = wav_bytes(audio, subtype="FLOAT")
        assert_error(submit(app_client, data), 422, "bad_audio", "nan")

    def test_too_long_is_413_before_decoding(self, app_client: TestClient) -> None:
        # 6 s at 8 kHz is small in bytes but over the 5 s limit of the test settings.
        audio = 0.1 * np.random.default_rng(1).standard_normal(6 * 8000).astype(np.float32)
        response = submit(app_client, wav_bytes(audio, rate=8000))
        assert_error(response, 413, "too_long", "limit is 5.0 s")

    def test_bad_reference_is_415(self, app_client: TestClient) -> None:
        response = app_client.post(
            "/separate",
            data={"method": "lass", "sources": "bass,drums"},
            files={
                "file": ("mix.wav", mix_wav()),
                "reference_bass": ("b.wav", b"not audio at all"),
                "reference_drums": ("d.wav", mix_wav()),
            },
        )
        assert_error(response, 415, "not_audio", "reference_bass")


@pytest.mark.usefixtures("fake_registration")
class TestTooLarge:
    def test_declared_length_over_limit_is_413(self, app_client: TestClient) -> None:
        big = b"\0" * 2_100_000  # over the 2 MB test limit
        assert_error(submit(app_client, big), 413, "too_large", "limit is 2000000 bytes")

    def test_chunked_upload_is_cut_at_the_limit(self, app_client: TestClient) -> None:
        """No Content-Length: the app stops pulling body chunks once the limit passes.

        Driven at the ASGI level, where we can count what the server actually read.
        """
        boundary = "xyzzy"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="method"\r\n\r\nlass\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        chunks = [head] + [b"\1" * 65536] * 100  # 6.4 MB, far past the 2 MB limit
        pulled = 0
        sent: list[dict] = []

        async def receive() -> dict:
            nonlocal pulled
            pulled += 1
            more = pulled < len(chunks)
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": more}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "path": "/separate",
            "raw_path": b"/separate",
            "query_string": b"",
            "root_path": "",
            "scheme": "http",
            "server": ("test", 80),
            "client": ("test", 1),
            "headers": [
                (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                (b"transfer-encoding", b"chunked"),
            ],
        }
        anyio.run(app_client.app, scope, receive, send)
        assert sent[0]["status"] == 413
        body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
        assert body["error"]["code"] == "too_large"
        assert pulled <= 2_000_000 // 65536 + 2  # it read just past the limit, no further


@pytest.mark.usefixtures("fake_registration")
class TestBadParameters:
    def test_unknown_method(self, app_client: TestClient) -> None:
        response = submit(app_client, mix_wav(), method="demucs")
        assert_error(response, 422, "bad_parameter", "unknown method 'demucs'")

    def test_method_no_worker_serves(self, app_client: TestClient) -> None:
        response = submit(app_client, mix_wav(), method="lqvae")
        assert_error(response, 422, "bad_parameter", "not served by the running workers")

    def test_three_sources_without_a_three_source_bundle(self, app_client: TestClient) -> None:
        response = submit(app_client, mix_wav(), method="mlass-bp", sources="bass,drums,piano")
        assert_error(response, 422, "bad_parameter", "it is served for: bass,drums")

    def test_one_source_is_not_a_separation(self, app_client: TestClient) -> None:
        assert_error(submit(app_client, mix_wav(), sources="bass"), 422, contains="two")

    def test_duplicate_sources(self, app_client: TestClient) -> None:
        assert_error(submit(app_client, mix_wav(), sources="bass,bass"), 422, contains="twice")

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("num_candidates", 0, "num_candidates"),
            ("num_candidates", 10_000, "at most"),
            ("temperature", -1, "temperature"),
            ("temperature", "inf", "temperature"),  # the engine refuses it: 422, not a failed job
            ("temperature", "nan", "temperature"),
            ("top_k", 0, "top_k"),
            ("seed", -3, "seed"),
            ("seed", 2**64, "seed"),  # torch.Generator takes 64 bits: the job would fail
            ("consistency", "perfect", "consistency"),
            ("search", "greedy", "search"),
        ],
    )
    def test_bad_option(self, app_client: TestClient, field: str, value, message: str) -> None:
        response = submit(app_client, mix_wav(), **{field: value})
        assert_error(response, 422, "bad_parameter", message)

    def test_beam_search_is_for_pair_methods(self, app_client: TestClient) -> None:
        response = submit(app_client, mix_wav(), method="mlass-bp", search="beam")
        assert_error(response, 422, "bad_parameter", "search=beam serves lass")

    def test_missing_file(self, app_client: TestClient) -> None:
        response = app_client.post("/separate", data={"method": "lass"})
        assert_error(response, 422, "bad_parameter", "file")

    def test_reference_for_unknown_source(self, app_client: TestClient) -> None:
        response = app_client.post(
            "/separate",
            data={"method": "lass"},
            files={"file": ("m.wav", mix_wav()), "reference_piano": ("p.wav", mix_wav())},
        )
        assert_error(response, 422, "bad_parameter", "reference_piano")

    def test_partial_references(self, app_client: TestClient) -> None:
        response = app_client.post(
            "/separate",
            data={"method": "lass"},
            files={"file": ("m.wav", mix_wav()), "reference_bass": ("b.wav", mix_wav())},
        )
        assert_error(response, 422, "bad_parameter", "reference_drums")


class TestUnavailable:
    def test_no_worker_is_503(self, app_client: TestClient) -> None:
        assert_error(submit(app_client, mix_wav()), 503, "unavailable", "no worker")

    def test_queue_full_is_503(
        self, settings: Settings, redis, fake_registration, store: JobStore
    ) -> None:
        from latsep.service.app import create_app

        small = settings.model_copy(update={"max_queue_depth": 2})
        with TestClient(create_app(small, redis)) as client:
            assert submit(client, mix_wav()).status_code == 202
            assert submit(client, mix_wav()).status_code == 202
            assert_error(submit(client, mix_wav()), 503, "unavailable", "queue is full")

    def test_readyz_fails_without_worker(self, app_client: TestClient) -> None:
        assert_error(app_client.get("/readyz"), 503, "unavailable", "no worker")
        assert app_client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.usefixtures("fake_registration")
class TestJobsWithoutWorker:
    def test_unknown_job_is_404(self, app_client: TestClient) -> None:
        for path in ("/jobs/nope", "/jobs/nope/stems/bass", "/jobs/nope/stems.zip"):
            assert_error(app_client.get(path), 404, "not_found", "no job")
        assert_error(app_client.delete("/jobs/nope"), 404, "not_found")
        assert_error(app_client.get("/jobs/nope/events"), 404, "not_found")

    def test_stems_of_a_queued_job_are_409(self, app_client: TestClient) -> None:
        created = submit(app_client, mix_wav(), seed=7)
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]
        job = app_client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "queued" and job["progress"] == 0.0
        assert job["options"]["seed"] == 7 and job["sources"] == ["bass", "drums"]
        assert job["stems"] is None
        assert_error(app_client.get(f"/jobs/{job_id}/stems/bass"), 409, "not_ready", "queued")
        assert_error(app_client.get(f"/jobs/{job_id}/stems.zip"), 409, "not_ready")

    def test_audio_travels_in_redis_not_in_job_arguments(
        self, app_client: TestClient, store: JobStore, redis
    ) -> None:
        from latsep.jobs import JOB_FUNCTION, fetch_job

        data = mix_wav()
        job_id = submit(app_client, data).json()["job_id"]
        job = fetch_job(redis, job_id)
        assert job is not None
        assert job.func_name == JOB_FUNCTION
        assert list(job.args) == [job_id]
        assert store.fetch_mixture(job_id) == data
        assert 0 < redis.ttl(store.key_for("upload", job_id, "mixture")) <= 6 * 3600

    def test_cancel_a_queued_job(self, app_client: TestClient, store: JobStore) -> None:
        job_id = submit(app_client, mix_wav()).json()["job_id"]
        response = app_client.delete(f"/jobs/{job_id}")
        assert response.json() == {"job_id": job_id, "status": "canceled"}
        assert app_client.get(f"/jobs/{job_id}").json()["status"] == "canceled"
        assert store.fetch_mixture(job_id) is None
        # Deleting an ended job forgets it.
        assert app_client.delete(f"/jobs/{job_id}").json()["status"] == "deleted"
        assert app_client.get(f"/jobs/{job_id}").status_code == 404

    def test_methods_and_readyz_follow_registrations(self, app_client: TestClient) -> None:
        methods = app_client.get("/methods").json()
        names = [m["name"] for m in methods["methods"]]
        assert names == ["lass", "mlass-bp", "mlass-pe"]
        assert methods["methods"][0]["sources"] == ["bass", "drums"]
        assert methods["workers"] == 1
        ready = app_client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["workers"] == 1


def test_redis_down_is_503(settings: Settings, tmp_path) -> None:
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from latsep.service.app import create_app

    dead = Redis(unix_socket_path=str(tmp_path / "nobody.sock"), retry=Retry(NoBackoff(), 0))
    with TestClient(create_app(settings, dead)) as client:
        assert_error(client.get("/jobs/abc"), 503, "unavailable", "redis")
        assert_error(client.get("/readyz"), 503, "unavailable", "redis")
        assert client.get("/healthz").status_code == 200
        assert "latsep_redis_up 0.0" in client.get("/metrics").text


def test_registration_expires_with_its_heartbeat(store: JobStore, fake_registration) -> None:
    store.register_worker(fake_registration, ttl_seconds=0.2)
    assert store.is_worker_alive(fake_registration.name)
    import time

    time.sleep(0.4)
    assert not store.is_worker_alive(fake_registration.name)
    assert store.live_workers() == []


def test_a_registration_of_another_schema_is_ignored(
    app_client: TestClient, store: JobStore, fake_registration
) -> None:
    """A worker of another latsep version (here: defaults in the old flat shape) is left out
    of routing instead of turning /methods into a 500."""
    import json

    store.register_worker(fake_registration, ttl_seconds=600)
    old = json.loads(fake_registration.model_dump_json())
    old["name"] = "old-worker"
    old["bundles"][0]["separation_defaults"] = {"lass": {"num_candidates": 4}}
    store.redis.set(store.key_for("worker", "old-worker"), json.dumps(old), ex=600)
    assert [w.name for w in store.live_workers()] == [fake_registration.name]
    assert app_client.get("/methods").status_code == 200


def test_openapi_documents_the_contract(app_client: TestClient) -> None:
    spec = app_client.get("/openapi.json").json()
    post = spec["paths"]["/separate"]["post"]
    assert set(post["responses"]) >= {"202", "413", "415", "422", "503"}
    body_ref = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "additionalProperties" in body_ref or "$ref" in body_ref
    schema_name = body_ref.get("$ref", "").rsplit("/", 1)[-1]
    if schema_name:
        fields = spec["components"]["schemas"][schema_name]["properties"]
        assert {"file", "method", "sources", "num_candidates", "seed", "consistency"} <= set(fields)
    for path in ("/jobs/{job_id}", "/jobs/{job_id}/stems/{source}", "/jobs/{job_id}/events"):
        assert path in spec["paths"]
    assert "404" in spec["paths"]["/jobs/{job_id}"]["get"]["responses"]


def test_metrics_expose_queue_depth(app_client: TestClient, fake_registration) -> None:
    assert submit(app_client, mix_wav()).status_code == 202
    text = app_client.get("/metrics").text
    assert 'latsep_queue_depth{queue="latsep.lass"} 1.0' in text
    assert 'latsep_jobs{state="queued"} 1.0' in text
    assert "latsep_workers 1.0" in text


def test_flac_upload_is_accepted(app_client: TestClient, fake_registration) -> None:
    bass, drums = tone_mix(1.0)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([bass, drums], 1), 44100, format="FLAC")  # stereo, 44.1 kHz
    response = submit(app_client, buffer.getvalue(), "mix.flac")
    assert response.status_code == 202, response.text
    job = app_client.get(response.json()["url"]).json()
    assert job["duration_seconds"] == pytest.approx(22050 / 44100, abs=1e-3)


@pytest.mark.usefixtures("fake_registration")
@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [
        ("WAV", "PCM_16"),
        ("WAV", "FLOAT"),
        ("RF64", "PCM_16"),
        ("WAVEX", "PCM_24"),
        ("AIFF", "PCM_16"),
        ("AU", "PCM_16"),
        ("W64", "PCM_16"),
    ],
)
def test_truncated_uncompressed_audio_is_415(app_client: TestClient, fmt: str, subtype: str):
    """libsndfile counts only the frames present, so a cut file would pass as shorter audio;
    the data size its header declares gives it away (issue #12.3)."""
    bass, drums = tone_mix(1.0)
    whole = wav_bytes(np.stack([bass, drums], 1), fmt=fmt, subtype=subtype)
    assert submit(app_client, whole, f"mix.{fmt.lower()}").status_code == 202
    cut = whole[: len(whole) * 2 // 3]
    response = submit(app_client, cut, f"mix.{fmt.lower()}")
    assert_error(response, 415, "not_audio", "truncated")


@pytest.mark.usefixtures("fake_registration")
class TestDecodeBudget:
    """Bytes and duration do not bound decoding; channels, rate and samples do (#12.4)."""

    def test_the_issues_flac_bomb_is_413(self, app_client: TestClient) -> None:
        # 8 channels at 655,350 Hz: a small FLAC that decodes to far more than its size.
        noise = 0.1 * np.random.default_rng(0).standard_normal((65535, 8)).astype(np.float32)
        data = wav_bytes(noise, rate=655_350, fmt="FLAC")
        assert_error(submit(app_client, data, "bomb.flac"), 413, "too_large", "655350 hz")

    def test_too_many_channels_is_413(self, app_client: TestClient) -> None:
        noise = 0.1 * np.random.default_rng(0).standard_normal((2205, 9)).astype(np.float32)
        response = submit(app_client, wav_bytes(noise, fmt="WAV"))
        assert_error(response, 413, "too_large", "9 channels")

    def test_decoded_samples_over_the_budget_is_413(
        self, settings: Settings, redis, fake_registration
    ) -> None:
        from latsep.service.app import create_app

        small = settings.model_copy(update={"max_decoded_samples": 50_000})
        bass, drums = tone_mix(1.0)
        stereo = wav_bytes(np.stack([bass, drums], 1), rate=44100)  # 0.5 s × 2 ch: 44,100
        mono = wav_bytes(np.concatenate([bass, drums]), rate=44100)  # 1 s × 1 ch: 44,100
        long = wav_bytes(np.stack([bass, drums, bass], 1), rate=44100)  # 66,150 samples
        with TestClient(create_app(small, redis)) as client:
            assert submit(client, stereo).status_code == 202
            assert submit(client, mono).status_code == 202
            assert_error(submit(client, long), 413, "too_large", "50000 samples")
