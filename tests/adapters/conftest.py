"""Adapter test fixtures: the Schema Registry stand-in run as a real process."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, wait_until_serving


@contextlib.contextmanager
def running_registry(store: Path | None = None, port: int | None = None) -> Iterator[str]:
    """`python -m simulator.schema_registry` on `port` (a free one if None); yields its URL."""
    port = port or free_port()
    args = [sys.executable, "-m", "simulator.schema_registry", "--port", str(port)]
    if store is not None:
        args += ["--store", str(store)]
    proc = subprocess.Popen(args, cwd=ROOT)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/subjects", proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """One registry for the session: tests use subjects of their own."""
    with running_registry() as url:
        yield url
