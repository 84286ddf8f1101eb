"""CPU per Order Service request: the worker's client (aiohttp) against httpx.

    .venv/bin/python bench/http_client.py [--requests 2000] [--connections 1 10 50]

Why the worker's OrderServiceClient sends over aiohttp (issue 8, row 14): at
200 pools its one event loop sends hundreds of requests a second, and under
py-spy the HTTP client was a third of that loop. This bench starts the Order
Service stand-in (simulator/order_service.py) as a subprocess and sends
--requests cancel-alls (a small JSON body and answer, like most of the
worker's traffic) at once, at most N under way, through:

  client    the worker's OrderServiceClient (aiohttp; budget, semaphore, reply
            read in full), N connections
  httpx     a bare httpx.AsyncClient with N connections (what the client used
            before), behind a semaphore of N

For each: requests/s, and this process's CPU (time.process_time: the client
and its event loop; the stand-in runs in its own process) per request. The
stand-in shares the machine's cores, so requests/s is bounded by it too; CPU
per request is the figure that matters to a saturated worker.

Prints a table and writes bench/results/http_client.json (--out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mms.settings.test")

BODY = {"account_id": "acct-bench", "symbol": "BTCUSDT-PERP"}
WARMUP = 100


async def _measure(send: Callable[[], Awaitable[Any]], n: int, at_once: int) -> dict[str, float]:
    gate = asyncio.Semaphore(at_once)

    async def one() -> None:
        async with gate:
            await send()

    await asyncio.gather(*(one() for _ in range(WARMUP)))  # connections opened
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"requests_per_s": round(n / wall), "cpu_ms_per_request": round(cpu / n * 1e3, 3)}


async def _client(url: str, n: int, connections: int) -> dict[str, float]:
    from quoting_worker.adapters.order_service import OrderServiceClient, RateBudget

    budget = RateBudget(rate_per_s=1e9, burst=10**9, reserve=0)
    async with OrderServiceClient(url, budget=budget, max_connections=connections) as client:
        return await _measure(lambda: client.cancel_all_ids("acct-bench", "BTCUSDT-PERP"), n, n)


async def _httpx(url: str, n: int, connections: int) -> dict[str, float]:
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits) as http:

        async def send() -> None:
            response = await http.post("/v1/orders/cancel-all", json=BODY)
            response.raise_for_status()

        return await _measure(send, n, connections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--out", default=str(ROOT / "bench/results/http_client.json"))
    args = parser.parse_args()

    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from tests.adapters.order_service_fixture import run_order_service

    rows: list[dict[str, Any]] = []
    with run_order_service() as url:
        for connections in args.connections:
            for name, run in (("client (aiohttp)", _client), ("httpx", _httpx)):
                figures = asyncio.run(run(url, args.requests, connections))
                rows.append({"client": name, "connections": connections, **figures})

    print(f"{'client':18s} {'connections':>11s} {'requests/s':>10s} {'CPU ms/request':>14s}")
    for row in rows:
        print(
            f"{row['client']:18s} {row['connections']:>11d} {row['requests_per_s']:>10d}"
            f" {row['cpu_ms_per_request']:>14.3f}"
        )
    result = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "loadavg_at_end": list(os.getloadavg()),
        "requests": args.requests,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
