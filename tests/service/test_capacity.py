"""Redis memory budget: uploads get 503 before Redis would refuse writes (#12.8)."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from redis import Redis
from service_support import tone_mix, wav_bytes

from latsep.jobs import JobStore, WorkerInfo, connect
from latsep.jobs.admission import MemoryBudget, admit, release
from latsep.settings import Settings

MB = 1 << 20


def test_the_budget_counts_used_memory_and_pending_uploads(redis_server) -> None:
    server = redis_server()
    redis = Redis.from_url(server.url)
    used = int(redis.info("memory")["used_memory"])
    budget = MemoryBudget(limit_bytes=used + 4 * MB, high_water=1.0)
    queues = ["latsep.lass"]
    assert not admit(redis, "latsep", queues, "big", 10, cost_bytes=5 * MB, budget=budget).admitted
    first = admit(redis, "latsep", queues, "a", 10, cost_bytes=3 * MB, budget=budget)
    assert first.admitted
    # "a" is being stored: its cost counts until it is released (then Redis' own count does).
    second = admit(redis, "latsep", queues, "b", 10, cost_bytes=3 * MB, budget=budget)
    assert not second.admitted and second.reason == "memory"
    release(redis, "latsep", "a")
    assert admit(redis, "latsep", queues, "b", 10, cost_bytes=3 * MB, budget=budget).admitted


def test_an_upload_whose_stems_would_not_fit_is_503_before_anything_is_written(
    redis_server, settings: Settings, fake_registration: WorkerInfo
) -> None:
    from latsep.service.app import create_app

    server = redis_server("--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
    redis = connect(server.url)
    JobStore(redis, settings.namespace).register_worker(fake_registration, 600)
    used = int(redis.info("memory")["used_memory"])
    bass, drums = tone_mix(3.0)
    upload = wav_bytes(np.stack([bass, drums, bass, drums], 1), rate=44100)  # 529 kB
    # Redis itself would take the upload; its stems (2 × 2.1 MB as float32) would not fit.
    assert used + len(upload) < 4 * MB
    small = wav_bytes(bass[:22050] + drums[:22050])
    with TestClient(create_app(settings.model_copy(update={"redis_url": server.url}))) as client:
        refused = client.post("/separate", data={"method": "lass"}, files={"file": ("m", upload)})
        assert refused.status_code == 503, refused.text
        assert "job store is full" in refused.json()["error"]["message"]
        assert not list(redis.scan_iter(match=f"{settings.namespace}:upload:*"))
        accepted = client.post("/separate", data={"method": "lass"}, files={"file": ("s", small)})
        assert accepted.status_code == 202, accepted.text
