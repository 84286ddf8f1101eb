"""Failpoints: off unless armed, a typo refused at start, and an armed one kills
its process (SIGKILL) on its turn and not before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from common.failpoints import POINTS, _parse
from tests.conftest import ROOT

PROGRAM = """
from common.failpoints import failpoint
for i in range(1, 4):
    failpoint("fill.stored")
    print("passed", i, flush=True)
"""


def run(spec: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MMS_FAILPOINTS"}
    if spec is not None:
        env["MMS_FAILPOINTS"] = spec
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", PROGRAM], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_unarmed_failpoints_do_nothing() -> None:
    done = run(None)
    assert done.returncode == 0
    assert done.stdout.split("\n")[:3] == ["passed 1", "passed 2", "passed 3"]


def test_an_armed_failpoint_kills_the_process_on_its_turn() -> None:
    first = run("fill.stored")
    assert first.returncode == -signal.SIGKILL
    assert first.stdout == ""
    second = run("place.recorded, fill.stored@2")
    assert second.returncode == -signal.SIGKILL
    assert second.stdout == "passed 1\n"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fill.stroed", "unknown failpoint 'fill.stroed'"),
        ("fill.stored@0", "'fill.stored@0': the count after @ must be ≥ 1"),
        ("fill.stored@x", "'fill.stored@x': the count after @ must be ≥ 1"),
    ],
)
def test_a_bad_spec_is_refused_naming_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match="MMS_FAILPOINTS") as raised:
        _parse(spec)
    assert message in str(raised.value)
    done = run(spec)
    assert done.returncode == 1
    assert message in done.stderr


def test_every_point_is_described_and_parses() -> None:
    assert _parse(",".join(POINTS)) == dict.fromkeys(POINTS, 1)
    assert all(POINTS.values())
