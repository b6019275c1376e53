"""Property-based tests of the whole HTTP API from its own OpenAPI schema (schemathesis):
no 5xx, and every answer conforms to the schema (status, content type, body), for a bounded
number of generated requests per operation (issue #12).

The app runs in-process on a real Redis database with a worker registration, so
POST /separate gets past routing to the audio checks; no worker runs.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from redis import Redis
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation.modes import GenerationMode

from latsep.jobs import WorkerInfo
from latsep.service.app import create_app
from latsep.settings import Settings

pytestmark = pytest.mark.slow

# Enough to reach every operation's edge cases without adding more than a few tens of
# seconds to the suite on two busy cores.
MAX_EXAMPLES = 30


def test_the_api_honours_its_schema(
    settings: Settings, redis: Redis, fake_registration: WorkerInfo
) -> None:
    """Each operation of the schema, MAX_EXAMPLES requests that fit the schema and as many
    that do not, all default checks (no 5xx; status codes, content types and bodies as
    documented; invalid requests refused)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings, redis))
    failures: dict[str, str] = {}
    statuses: Counter[int] = Counter()
    examples = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            nonlocal examples
            examples += 1
            # The schema cannot say which bytes decode as audio nor which methods the
            # workers serve: a schema-valid upload may rightly get 415 or 422.
            response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
            statuses[response.status_code] += 1

        try:
            check()
        except Unsatisfiable:  # nothing in this operation can be made invalid (a str path)
            assert mode == GenerationMode.NEGATIVE, operation.label
        except (Exception, BaseExceptionGroup) as exc:  # run every operation, report all
            failures[f"{operation.label} ({mode})"] = f"{type(exc).__name__}: {exc}"[:2000]
    print(f"schemathesis: {examples} requests, {len(operations)} operations, {statuses}")
    assert not any(status >= 500 for status in statuses)
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
