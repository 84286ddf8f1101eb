"""The Order Service stand-in as a separate process, and its admin routes.

Kept out of a conftest so the ORM store's tests next door keep their database
fixtures; test modules wrap these in fixtures of their own."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx

from tests.conftest import ROOT, free_port, wait_until_serving


@contextlib.contextmanager
def run_order_service() -> Iterator[str]:
    """Starts simulator/order_service.py on a free port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "simulator.order_service", "--port", str(port)], cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/healthz", proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class SimAdmin:
    """The stand-in's simulator-only routes, called synchronously from tests."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(f"{self.url}{path}", json=body or {}, timeout=5)
        response.raise_for_status()
        return dict(response.json())

    def _get(self, path: str, **params: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=5)
        response.raise_for_status()
        return dict(response.json())

    def reset(self) -> None:
        self._post("/admin/reset")

    def faults(self, **faults: Any) -> dict[str, Any]:
        return self._post("/admin/faults", faults)

    def book(self, symbol: str, best_bid: str | None, best_ask: str | None) -> None:
        self._post("/admin/book", {"symbol": symbol, "best_bid": best_bid, "best_ask": best_ask})

    def halt(self, symbol: str, halted: bool = True) -> None:
        self._post("/admin/halt", {"symbol": symbol, "halted": halted})

    def adjust_position(self, account_id: str, symbol: str, delta: str) -> None:
        """A trade MMS never hears of: the account's venue position moves by `delta`."""
        self._post("/admin/positions", {"account_id": account_id, "symbol": symbol, "delta": delta})

    def stats(self) -> dict[str, Any]:
        return self._get("/admin/stats")

    def requests(self, route: str | None = None) -> list[dict[str, Any]]:
        params = {"route": route} if route else {}
        return list(self._get("/admin/requests", **params)["requests"])
