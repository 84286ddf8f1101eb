"""The quoting core's tests: no database, no Redis, no Auth Service, no Django.

These overrides replace the root conftest's autouse fixtures for this folder."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# "ci" keeps `make test` in minutes; "thorough" is the long run quoted in issue notes:
#   HYPOTHESIS_PROFILE=thorough .venv/bin/pytest tests/core/test_engine_invariants.py
# "ci" replays the same 500 schedules every run (a red CI names a real regression,
# not a lucky draw); "thorough" explores 10,000 fresh ones each time it runs.
settings.register_profile(
    "ci",
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _auth_service() -> None:
    """The core has no API to authenticate."""


@pytest.fixture(autouse=True)
def _clean_redis() -> None:
    """The core never touches Redis."""
