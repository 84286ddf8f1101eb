"""Schemathesis against /v1/schema (issue 8, row 13): every operation the schema
declares, called with generated inputs (valid and not) by a caller holding every
staff role, answers without a server error. In process, through the WSGI app
against the test database: no server to start, the same code the API runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import TokenFactory
from tests.factories import MemberFactory, ParticipantFactory, PoolFactory
from tests.figures import record

pytestmark = pytest.mark.django_db

EXAMPLES = 12  # generated calls per operation


@pytest.fixture
def api_schema() -> Iterator[Any]:
    """The schema, served by the WSGI app in this process. Its requests run in the
    test's transaction: like Django's test client, the app must not close the
    connection at the end of each request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/v1/schema", get_wsgi_application())
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def staff_token(issue_token: TokenFactory) -> str:
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    MemberFactory(pool=pool, participant=ParticipantFactory(state="ACTIVE"))
    return issue_token(sub="fuzz-staff", roles=("ops", "finance", "viewer"))


def test_no_operation_answers_with_a_server_error(api_schema: Any, staff_token: str) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 40, len(operations)
    headers = {"Authorization": f"Bearer {staff_token}"}
    calls: list[int] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,  # the same inputs every run: a failure repeats
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            response = case.call(headers=headers)
            calls.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])

        call()
    record(
        13,
        fuzz_operations=len(operations),
        fuzz_calls=len(calls),
        fuzz_server_errors=sum(status >= 500 for status in calls),
    )
    assert len(calls) >= len(operations)
    assert 401 not in calls  # every call got past authentication, to the code under test
    assert sum(200 <= status < 300 for status in calls) > len(operations)
