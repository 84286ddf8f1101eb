"""Adapter test helpers: the Schema Registry stand-in run as a process of a test's own
(the session's is tests/conftest.py's `schema_registry_url`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from devstack import standins


@contextlib.contextmanager
def running_registry(store: Path | None = None, port: int | None = None) -> Iterator[str]:
    """`python -m simulator.schema_registry` on `port` (a free one if None); yields its URL."""
    with standins.schema_registry(port, store=store) as registry:
        yield registry.url
