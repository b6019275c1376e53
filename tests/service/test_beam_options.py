"""Beam search options the engine refuses are a 422 at submission, never a failed job."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from service_support import tone_mix, wav_bytes

from latsep.jobs import JobStore, SeparationOptions
from latsep.service.errors import ApiError
from latsep.service.submission import check_options


def options(**fields) -> SeparationOptions:
    return SeparationOptions(num_candidates=2, seed=0, **fields)


@pytest.mark.parametrize("temperature", [0.5, 1.5])
def test_beam_with_temperature_is_rejected(temperature: float) -> None:
    with pytest.raises(ApiError) as caught:
        check_options("lass", options(search="beam", temperature=temperature))
    assert caught.value.status_code == 422
    assert "temperature must be 1" in str(caught.value.detail)


@pytest.mark.parametrize("method", ["mlass-bp", "mlass-pe"])
def test_beam_with_a_many_source_method_is_rejected(method: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_options(method, options(search="beam"))
    assert caught.value.status_code == 422
    assert "search=beam serves" in str(caught.value.detail)


def test_valid_combinations_pass() -> None:
    check_options("lass", options(search="beam", temperature=1.0))
    check_options("lqvae", options(search="beam"))
    check_options("mlass-bp", options(search="sample", temperature=0.7))
    check_options("lass", options(search="sample", temperature=2.0))


@pytest.mark.usefixtures("fake_registration")
def test_api_answers_422_and_queues_nothing(app_client: TestClient, store: JobStore) -> None:
    bass, drums = tone_mix(1.0)
    response = app_client.post(
        "/separate",
        data={"method": "lass", "search": "beam", "temperature": "0.7"},
        files={"file": ("mix.wav", wav_bytes(bass + drums))},
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_parameter"
    assert "temperature must be 1" in error["message"]
    assert not store.redis.keys("*job:*")  # nothing stored, nothing queued
    accepted = app_client.post(
        "/separate",
        data={"method": "lass", "search": "beam", "temperature": "1.0"},
        files={"file": ("mix.wav", wav_bytes(bass + drums))},
    )
    assert accepted.status_code == 202, accepted.text
