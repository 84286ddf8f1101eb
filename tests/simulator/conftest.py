"""The TradeX simulator's own tests. The pure parts (matching engine, market
model) need no database, Redis or Auth Service: these overrides replace the
root conftest's autouse fixtures for this folder; tests that need the broker or
the registry ask for those fixtures by name."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _auth_service() -> None:
    """The simulator has no MMS API to authenticate."""


@pytest.fixture(autouse=True)
def _clean_redis() -> None:
    """The simulator never touches MMS's Redis."""
