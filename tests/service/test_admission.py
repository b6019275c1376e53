"""The queue cap is decided atomically: racing submissions never overshoot it (issue #12.1)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from service_support import tone_mix, wav_bytes

from latsep.jobs import JobStore, make_queue
from latsep.jobs.admission import RESERVATION_SECONDS, admit, release
from latsep.settings import Settings


def test_reservations_count_until_released(redis: Redis) -> None:
    queues = ["latsep.lass"]
    assert admit(redis, "latsep", queues, "a", cap=2).admitted
    assert admit(redis, "latsep", queues, "b", cap=2).admitted
    refused = admit(redis, "latsep", queues, "c", cap=2)
    assert not refused.admitted and refused.depth == 2
    release(redis, "latsep", "a")
    assert admit(redis, "latsep", queues, "c", cap=2).admitted


def test_queued_jobs_count_and_stale_reservations_lapse(redis: Redis) -> None:
    make_queue(redis, "latsep.lass").enqueue("math.floor", args=(1.5,))
    past = time.time() - RESERVATION_SECONDS - 1
    assert admit(redis, "latsep", ["latsep.lass"], "old", cap=2, now=past).admitted
    # The reservation of a submission that never finished (its API died) no longer counts.
    decision = admit(redis, "latsep", ["latsep.lass"], "new", cap=2)
    assert decision.admitted and decision.depth == 1


def test_a_reserved_job_already_in_its_queue_counts_once(redis: Redis) -> None:
    """Between the enqueue and the release of its reservation a job is in both places; it
    must not take two of the cap's places (a loaded machine widens that window)."""
    queues = ["latsep.lass"]
    assert admit(redis, "latsep", queues, "a", cap=2).admitted
    make_queue(redis, "latsep.lass").enqueue("math.floor", args=(1.5,), job_id="a")
    decision = admit(redis, "latsep", queues, "b", cap=2)
    assert decision.admitted and decision.depth == 1
    refused = admit(redis, "latsep", queues, "c", cap=2)  # a queued, b reserved: full
    assert not refused.admitted and refused.depth == 2


@pytest.mark.usefixtures("fake_registration")
def test_cap_holds_under_ten_simultaneous_submissions(
    settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latsep.service.app import create_app

    capped = settings.model_copy(update={"max_queue_depth": 5})
    app = create_app(capped, redis)
    store: JobStore = app.state.store
    save_upload = store.save_upload

    def slow_save_upload(*args, **kwargs) -> None:
        time.sleep(0.3)  # a slow Redis write: every racer has checked the cap by now
        save_upload(*args, **kwargs)

    monkeypatch.setattr(store, "save_upload", slow_save_upload)
    bass, drums = tone_mix(0.5)
    data = wav_bytes(bass + drums)
    with TestClient(app) as client, ThreadPoolExecutor(10) as pool:

        def post(_: int) -> int:
            files = {"file": ("mix.wav", data)}
            return client.post("/separate", data={"method": "lass"}, files=files).status_code

        statuses = sorted(pool.map(post, range(10)))
    assert statuses == [202] * 5 + [503] * 5
    assert make_queue(redis, "latsep.lass").count == 5
