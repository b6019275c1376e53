"""Jobs survive a SIGKILLed worker and a Redis crash with AOF; a paused Redis costs bounded
503s, not hung requests; the queue cap holds under simultaneous submissions (issue #12).

Every test runs its own redis-server (AOF, fsync always) on a free port: see conftest.py.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from fault_support import TERMINAL, mix, post_mix, record, registration, wait_status
from redis import Redis
from service_support import wav_bytes

from latsep.jobs import JobStore, fetch_job, make_queue
from latsep.service.app import create_app
from latsep.settings import Settings

pytestmark = pytest.mark.slow


def test_no_job_is_lost_to_a_killed_worker_and_a_redis_crash(
    aof_server, fault_settings: Settings, fault_store: JobStore, workers
) -> None:
    statuses_during_outage: list[int] = []
    with TestClient(create_app(fault_settings)) as client:
        doomed = workers("doomed")
        # Long enough (4.5 s of audio, 4 candidates) to be running still when it is killed.
        created = post_mix(client, wav_bytes(mix(4.5)), num_candidates="4")
        long_job = created.json()["job_id"]
        wait_status(client, long_job, until=("started",))
        deadline = time.monotonic() + 60
        while client.get(f"/jobs/{long_job}").json()["progress"] <= 0.05:
            assert time.monotonic() < deadline, "the job never progressed"
            time.sleep(0.05)
        short_jobs = []
        for seed in range(5):
            created = post_mix(client, wav_bytes(mix(0.3, seed)))
            assert created.status_code == 202, created.text
            short_jobs.append(created.json()["job_id"])
        doomed.kill()  # SIGKILL mid-job: no cleanup runs
        aof_server.kill()  # and Redis crashes: only its AOF remains
        for job_id in [long_job, *short_jobs]:
            statuses_during_outage.append(client.get(f"/jobs/{job_id}").status_code)
        assert client.get("/healthz").status_code == 200
        aof_server.start()  # same port and directory: it replays the AOF
        workers("rescuer")
        ended = {job_id: wait_status(client, job_id) for job_id in [long_job, *short_jobs]}
    lost = [job_id for job_id, job in ended.items() if job["status"] != "finished"]
    rq_job = fetch_job(fault_store.redis, long_job)
    losses = int(rq_job.meta.get("worker_losses", 0)) if rq_job is not None else -1
    record(
        "worker SIGKILL mid-job + Redis SIGKILL, AOF restart",
        jobs=len(ended),
        lost=len(lost),
        statuses_during_outage=sorted(set(statuses_during_outage)),
        other_5xx=sum(s >= 500 and s != 503 for s in statuses_during_outage),
        long_job_worker_losses=losses,
    )
    assert lost == []
    assert set(statuses_during_outage) == {503}  # said plainly, never a 500
    assert losses == 1  # the killed worker's job was requeued once, then finished


def test_a_paused_redis_costs_bounded_503s_and_ends_event_streams(
    aof_server, fault_settings: Settings, fault_store: JobStore
) -> None:
    fault_store.register_worker(registration(), 600)
    fault_settings = fault_settings.model_copy(update={"redis_socket_timeout_seconds": 0.5})
    with TestClient(create_app(fault_settings)) as client:
        wav = wav_bytes(mix(0.3))
        job_id = post_mix(client, wav).json()["job_id"]
        events: list[str] = []
        with client.stream("GET", f"/jobs/{job_id}/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    events.append(line[len("event: ") :])
                    if events == ["progress"]:
                        aof_server.pause()  # SIGSTOP: connections stay open, nothing answers
                        paused_at = time.monotonic()
        stream_end_s = time.monotonic() - paused_at
        answers = []
        for request in (lambda: client.get(f"/jobs/{job_id}"), lambda: post_mix(client, wav)):
            start = time.monotonic()
            answers.append((request().status_code, time.monotonic() - start))
        healthz = client.get("/healthz").status_code
        aof_server.resume()
        after = client.get(f"/jobs/{job_id}")
    slowest = max(seconds for _, seconds in answers)
    record(
        "Redis paused (SIGSTOP)",
        socket_timeout_s=fault_settings.redis_socket_timeout_seconds,
        statuses=[status for status, _ in answers],
        slowest_answer_s=round(slowest, 2),
        event_stream_end_s=round(stream_end_s, 2),
    )
    assert events[-1] == "error"
    assert [status for status, _ in answers] == [503, 503]
    # A few socket timeouts (each Redis call tried, and retried once): seconds, not forever.
    assert slowest < 8 * fault_settings.redis_socket_timeout_seconds + 2
    assert healthz == 200
    assert after.status_code == 200 and after.json()["status"] == "queued"


def test_the_cap_holds_under_simultaneous_submissions_to_two_replicas(
    aof_server, fault_settings: Settings, fault_redis: Redis
) -> None:
    capped = fault_settings.model_copy(update={"max_queue_depth": 5})
    wav = wav_bytes(mix(0.3))
    rounds = []
    for _ in range(3):
        fault_redis.flushall()  # our own server
        JobStore(fault_redis, capped.namespace).register_worker(registration(), 600)
        with (
            TestClient(create_app(capped)) as first,
            TestClient(create_app(capped)) as second,
            ThreadPoolExecutor(10) as pool,
        ):
            clients = [first, second] * 5
            statuses = list(pool.map(lambda c: post_mix(c, wav).status_code, clients))
        queued = make_queue(fault_redis, "latsep.lass").count
        rounds.append((statuses.count(202), statuses.count(503), queued))
    record("10 simultaneous submissions, cap 5, two API replicas", rounds=rounds)
    assert all(r == (5, 5, 5) for r in rounds), rounds


def test_terminal_states_are_the_only_ends() -> None:
    assert TERMINAL == ("finished", "failed", "canceled")
