"""Options left out of POST /separate take the serving bundle's defaults for the method
(published by the workers, shown in /methods), else the global ones; the job reports what it
runs with; likelihood_weight is a request option with the engine's limits as 422s."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_support import WorkerProcess, make_bundles, tone_mix, wait_for, wav_bytes

from latsep.jobs import BundleInfo, JobStore, WorkerInfo
from latsep.settings import Settings

# As a worker publishes them: per method, per source count.
TUNED = {
    "lass": {"2": {"num_candidates": 3, "likelihood_weight": 2.0, "top_k": 6}},
    "mlass-bp": {"2": {"temperature": 0.8}},
}


def register(store: JobStore, defaults: dict, sources=("bass", "drums"), name="tuned") -> None:
    sets = [list(sources)] if len(sources) == 2 else [list(sources[:2]), list(sources)]
    info = WorkerInfo(
        name=name,
        hostname="test",
        pid=0,
        device="cpu",
        queues=["latsep.lass", "latsep.mlass-bp", "latsep.mlass-pe"],
        bundles=[
            BundleInfo(
                name="tiny",
                sources=list(sources),
                methods=["lass", "mlass-bp", "mlass-pe"],
                max_sources={"lass": 2, "mlass-bp": len(sources), "mlass-pe": len(sources)},
                source_sets={"lass": [list(sources[:2])], "mlass-bp": sets, "mlass-pe": sets},
                sample_rate=22050,
                separation_defaults=defaults,
            )
        ],
        started_at=time.time(),
    )
    store.register_worker(info, ttl_seconds=600)


def mix_wav() -> bytes:
    bass, drums = tone_mix(0.5)
    return wav_bytes(bass + drums)


def submit(client: TestClient, **fields):
    form = {"method": "lass", **{k: str(v) for k, v in fields.items()}}
    return client.post("/separate", data=form, files={"file": ("mix.wav", mix_wav())})


def job_options(client: TestClient, **fields) -> dict:
    response = submit(client, **fields)
    assert response.status_code == 202, response.text
    return client.get(response.json()["url"]).json()["options"]


def test_methods_show_the_defaults_a_request_gets(app_client: TestClient, store: JobStore) -> None:
    register(store, TUNED)
    methods = {m["name"]: m for m in app_client.get("/methods").json()["methods"]}
    assert methods["lass"]["searches"] == ["sample", "beam", "smc", "mixed"]
    assert methods["lass"]["defaults"] == {
        "num_candidates": 3,
        "search": "sample",
        "temperature": 1.0,
        "top_k": 6,
        "likelihood_weight": 2.0,
    }
    # No tuned values: the global defaults (num_candidates from the settings: 2 here).
    assert methods["mlass-pe"]["defaults"] == {
        "num_candidates": 2,
        "search": "sample",
        "temperature": 1.0,
        "top_k": None,
        "likelihood_weight": 1.0,
    }
    assert methods["mlass-bp"]["defaults"]["temperature"] == 0.8


def test_a_job_reports_the_resolved_options(app_client: TestClient, store: JobStore) -> None:
    register(store, TUNED)
    omitted = job_options(app_client, seed=4)
    assert omitted == {
        "num_candidates": 3,
        "search": "sample",
        "temperature": 1.0,
        "top_k": 6,
        "likelihood_weight": 2.0,
        "seed": 4,
        "consistency": "ensemble",
    }
    asked = job_options(app_client, num_candidates=1, likelihood_weight=0.5, temperature=1.5)
    assert asked["num_candidates"] == 1 and asked["likelihood_weight"] == 0.5
    assert asked["temperature"] == 1.5 and asked["top_k"] == 6
    plain = job_options(app_client, method="mlass-pe")
    assert plain["num_candidates"] == 2 and plain["likelihood_weight"] == 1.0


def test_the_resolved_options_are_stored_with_the_job(
    app_client: TestClient, store: JobStore
) -> None:
    """Resolved once, at submission: the job carries what the worker must run."""
    register(store, TUNED)
    response = submit(app_client, seed=4, likelihood_weight=0.5)
    assert response.status_code == 202, response.text
    request = store.fetch_request(response.json()["job_id"])
    assert request is not None and request.resolved is not None
    assert request.resolved.model_dump() == {
        "num_candidates": 3,
        "search": "sample",
        "temperature": 1.0,
        "top_k": 6,
        "likelihood_weight": 0.5,
        "seed": 4,
        "consistency": "ensemble",
    }


@pytest.mark.parametrize("weight", ["0", "-1", "inf", "nan", "heavy"])
def test_bad_likelihood_weight_is_422(app_client: TestClient, store: JobStore, weight: str) -> None:
    register(store, {})
    response = submit(app_client, likelihood_weight=weight)
    assert response.status_code == 422, response.text
    assert "likelihood_weight" in response.json()["error"]["message"]


def test_mlass_bp_with_three_sources_needs_weight_one(
    app_client: TestClient, store: JobStore
) -> None:
    register(store, {}, sources=("bass", "drums", "other"))
    response = submit(app_client, method="mlass-bp", likelihood_weight=2)
    assert response.status_code == 422, response.text
    assert "must be 1 for mlass-bp with 3 sources" in response.json()["error"]["message"]
    ok = submit(app_client, method="mlass-bp", sources="bass,drums", likelihood_weight=2)
    assert ok.status_code == 202, ok.text  # two sources: any weight
    assert submit(app_client, method="mlass-bp", likelihood_weight=1).status_code == 202


def test_defaults_follow_the_number_of_sources(app_client: TestClient, store: JobStore) -> None:
    """mlass-bp's tuned weight is 2 for two sources (where it is LASS) and must be 1 for
    three: each request gets the defaults of its own source count."""
    per_count = {
        "mlass-bp": {
            "2": {"num_candidates": 2, "likelihood_weight": 2.0},
            "3": {"num_candidates": 3, "likelihood_weight": 1.0},
        }
    }
    register(store, per_count, sources=("bass", "drums", "other"))
    three = job_options(app_client, method="mlass-bp")  # no sources: all three
    assert three["num_candidates"] == 3 and three["likelihood_weight"] == 1.0
    two = job_options(app_client, method="mlass-bp", sources="bass,drums")
    assert two["num_candidates"] == 2 and two["likelihood_weight"] == 2.0
    methods = {m["name"]: m for m in app_client.get("/methods").json()["methods"]}
    shown = methods["mlass-bp"]
    assert shown["searches"] == [
        "sample",
        "smc",
        "mixed",
    ]  # beam search is for the two-source methods
    assert shown["defaults"]["likelihood_weight"] == 1.0  # what a request naming none gets
    assert {n: d["likelihood_weight"] for n, d in shown["defaults_by_sources"].items()} == {
        "2": 2.0,
        "3": 1.0,
    }
    assert shown["defaults_by_sources"]["2"]["num_candidates"] == 2


def test_bundle_defaults_obey_the_limits(app_client: TestClient, store: JobStore) -> None:
    register(store, {"lass": {"2": {"num_candidates": 500, "search": "beam"}}})
    too_many = submit(app_client)
    assert too_many.status_code == 422
    assert "(the bundle's default) is 500" in too_many.json()["error"]["message"]
    tempered = submit(app_client, num_candidates=2, temperature=0.5)  # beam from the bundle
    assert tempered.status_code == 422
    assert "temperature must be 1" in tempered.json()["error"]["message"]


def test_a_real_worker_runs_with_its_bundle_defaults(
    app_client: TestClient, settings: Settings, store: JobStore, tmp_path: Path
) -> None:
    """Defaults recorded with `set_separation_defaults` reach the API through the worker's
    registration, and the finished job reports the options the worker ran with."""
    from latsep.bundle import set_separation_defaults

    plain, lq = make_bundles(tmp_path / "bundles", seed=1)
    set_separation_defaults(plain, "lass", {"num_candidates": 3, "likelihood_weight": 1.5})
    tuned = settings.model_copy(update={"bundles": f"{plain},{lq}"})
    worker = WorkerProcess(tuned, store, "tuned-worker")
    try:
        methods = {m["name"]: m for m in app_client.get("/methods").json()["methods"]}
        assert methods["lass"]["defaults"]["num_candidates"] == 3
        response = submit(app_client, seed=2)
        assert response.status_code == 202, response.text
        url = response.json()["url"]

        def finished():
            job = app_client.get(url).json()
            return job if job["status"] in ("finished", "failed") else None

        job = wait_for(finished, timeout=60)
        assert job["status"] == "finished", job
        assert job["options"]["num_candidates"] == 3 and job["options"]["likelihood_weight"] == 1.5
        assert len(job["candidate_consistency"]) == 3
    finally:
        worker.stop()


def test_method_defaults_to_mlass_pe_and_references_name_the_sources(
    app_client: TestClient, store: JobStore
) -> None:
    """No `method`: mlass-pe; no `sources` but reference_bass and reference_drums: those two
    (here among three, where naming none would mean all three)."""
    register(store, {}, sources=("bass", "drums", "other"))
    bass, drums = tone_mix(0.5)
    files = {
        "file": ("mix.wav", wav_bytes(bass + drums)),
        "reference_bass": ("b.wav", wav_bytes(bass)),
        "reference_drums": ("d.wav", wav_bytes(drums)),
    }
    response = app_client.post("/separate", files=files)
    assert response.status_code == 202, response.text
    job = app_client.get(response.json()["url"]).json()
    assert job["method"] == "mlass-pe" and job["sources"] == ["bass", "drums"]
    plain = app_client.post("/separate", files={"file": ("mix.wav", mix_wav())})
    assert plain.status_code == 202, plain.text
    assert app_client.get(plain.json()["url"]).json()["sources"] == ["bass", "drums", "other"]
