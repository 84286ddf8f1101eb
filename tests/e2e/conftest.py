"""The end-to-end stack: a topic namespace on the session's Kafka, the schema registry, the Metadata
stand-in and the TradeX simulator (`python -m simulator`) as real processes;
runquoter in a thread of the test process (as the other worker tests run it),
against the test database and Redis."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import standins
from tests.adapters.test_metadata import metadata_target  # noqa: F401 - shared fixture
from tests.conftest import free_port
from tests.kafka import Bus, namespace_on


class TradeXAdmin:
    """The simulator's HTTP admin routes, for the tests."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def get(self, path: str, **params: str) -> Any:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def open_orders(self, account_id: str, symbol: str) -> list[dict[str, Any]]:
        return list(self.get("/v1/orders", account_id=account_id, symbol=symbol)["orders"])

    def ledger(self, account_id: str) -> dict[str, Any]:
        response = self.http.get("/admin/ledger", params={"account_id": account_id})
        return dict(response.json())

    def market(self) -> dict[str, Any]:
        return dict(self.get("/admin/market"))

    def move(self, symbol: str, bps: float) -> Decimal:
        """The symbol's fair value and mark jump by `bps` now; the new mark."""
        return Decimal(self.post("/admin/market", {"symbol": symbol, "move_bps": bps})["mark"])

    def feed(self, action: str, symbol: str | None = None) -> None:
        self.post("/admin/feed", {"action": action, "symbol": symbol})

    def halt(self, symbol: str, halted: bool = True) -> None:
        self.post("/admin/halt", {"symbol": symbol, "halted": halted})

    def faults(self, **faults: Any) -> None:
        self.post("/admin/faults", faults)


@contextlib.contextmanager
def running_tradex(broker: Bus, registry: str, tmp: Path, *args: str) -> Iterator[TradeXAdmin]:
    port = free_port()
    tradex = standins.tradex(
        *broker.simulator_args,
        "--registry",
        registry,
        *args,
        port=port,
        log=tmp / f"tradex-{port}.log",
    )
    try:
        yield TradeXAdmin(tradex.url)
    finally:
        tradex.stop(timeout=15)


@pytest.fixture
def broker(kafka_broker: str) -> Iterator[Bus]:
    """The test's namespace on the session's Kafka, every MMS topic in it with
    three partitions."""
    with namespace_on(kafka_broker, partitions=3) as bus:
        yield bus
