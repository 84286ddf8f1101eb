"""Start-up fails once, naming every missing or malformed variable."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from mms.env import parse_duration

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "POSTGRES_URL": "postgres://postgres@127.0.0.1:5432/mms",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081",
    "DJANGO_SECRET_KEY": "k" * 50,
}


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "mms.settings.base", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_good_environment_starts():
    result = _start(GOOD)
    assert result.returncode == 0, result.stderr


def test_every_problem_is_named_at_once():
    env = {k: v for k, v in GOOD.items() if k not in ("POSTGRES_URL", "REDIS_URL")}
    env |= {"PERFORMANCE_SNAPSHOT_INTERVAL": "abc", "HTTP_PORT": "99999", "MM_SHADOW_MODE": "maybe"}
    result = _start(env)
    assert result.returncode != 0
    for expected in (
        "POSTGRES_URL: is required but not set",
        "REDIS_URL: is required but not set",
        "PERFORMANCE_SNAPSHOT_INTERVAL: 'abc' is not a duration",
        "HTTP_PORT: '99999' is not a TCP port",
        "MM_SHADOW_MODE",
    ):
        assert expected in result.stderr


def test_disable_auth_is_refused_outside_debug():
    result = _start({**GOOD, "DISABLE_AUTH": "true"})
    assert result.returncode != 0
    assert "DISABLE_AUTH: true is only allowed for development" in result.stderr


def test_secret_key_is_required_outside_debug():
    env = {k: v for k, v in GOOD.items() if k != "DJANGO_SECRET_KEY"}
    result = _start(env)
    assert "DJANGO_SECRET_KEY: is required when DJANGO_DEBUG is off" in result.stderr


@pytest.mark.parametrize(
    ("raw", "seconds"), [("10s", 10), ("500ms", 0.5), ("2m", 120), ("1h", 3600), ("30", 30)]
)
def test_durations(raw, seconds):
    assert parse_duration(raw) == timedelta(seconds=seconds)


@pytest.mark.parametrize("raw", ["abc", "10x", "-5s", "0s", ""])
def test_bad_durations(raw):
    with pytest.raises(ValueError, match=r"duration|greater than zero"):
        parse_duration(raw)


def test_the_order_budget_must_leave_room_beyond_the_cancel_reserve():
    result = _start(
        {**GOOD, "ORDER_SERVICE_RATE_PER_S": "10", "ORDER_SERVICE_CANCEL_RESERVE": "10"}
    )
    assert "ORDER_SERVICE_CANCEL_RESERVE: must be below ORDER_SERVICE_RATE_PER_S (10)" in (
        result.stderr
    )
    result = _start({**GOOD, "ORDER_SERVICE_RATE_PER_S": "0"})
    assert "ORDER_SERVICE_RATE_PER_S: '0' is not a whole number ≥ 1" in result.stderr
