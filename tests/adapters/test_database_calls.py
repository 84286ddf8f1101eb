"""The runquoter's database thread against the real PostgreSQL: its connection is
checked at most once a second, and one the server dropped is replaced."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.db import OperationalError, connection

from quoting_worker.adapters.journal import conninfo
from quoting_worker.runner.durable import (
    DATABASE_CHECK_INTERVAL_S,
    DatabaseCalls,
    database_answers,
)

# Outside a test transaction: the check closes a connection left in one.
pytestmark = pytest.mark.django_db(transaction=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def health_checks(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each health check Django runs on this thread's connection, with its answer."""
    checks: list[bool] = []
    real = connection.is_usable

    def counted() -> Any:
        usable = real()
        checks.append(usable)
        return usable

    connection.close()  # a new connection, well within CONN_MAX_AGE
    connection.ensure_connection()
    monkeypatch.setattr(connection, "is_usable", counted)
    return checks


def _drop_connection() -> None:
    """The server ends this thread's session, as a restart would."""
    pid = connection.connection.info.backend_pid
    with psycopg.connect(**conninfo(connection.settings_dict), autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def calls(clock: Clock, health_checks: list[bool]) -> DatabaseCalls:
    """The database thread's calls, on a fresh connection, timed by `clock`."""
    return DatabaseCalls(clock)


def test_the_connection_is_checked_once_an_interval_not_before_every_call(
    calls: DatabaseCalls, clock: Clock, health_checks: list[bool]
) -> None:
    for _ in range(50):
        calls(database_answers)
    assert health_checks == [True]  # 50 calls, one SELECT 1 before them

    clock.now += DATABASE_CHECK_INTERVAL_S
    calls(database_answers)
    assert health_checks == [True, True]


def test_a_connection_the_server_dropped_is_replaced_before_use_after_an_interval(
    calls: DatabaseCalls, clock: Clock, health_checks: list[bool]
) -> None:
    calls(database_answers)
    _drop_connection()
    clock.now += DATABASE_CHECK_INTERVAL_S
    calls(database_answers)  # the check finds it dead and a new one answers
    assert health_checks == [True, False]


def test_a_connection_dropped_within_an_interval_fails_one_call_and_is_replaced(
    calls: DatabaseCalls,
) -> None:
    calls(database_answers)
    _drop_connection()
    with pytest.raises(OperationalError):
        calls(database_answers)
    calls(database_answers)  # the failed call closed it: this one connects afresh
    assert connection.connection.info.backend_pid is not None
