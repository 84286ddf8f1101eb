"""Order Service stand-in: the venue's order entry over HTTP, with real state.

The contract is contracts/order-service.openapi.yaml; this module serves it
for tests and local runs, plus simulator-only admin routes:

    POST /admin/faults   latency, 5xx, timeout-after-accept, connection reset,
                         rejects and a rate limit, drawn from a seeded RNG
    POST /admin/book     rests a best bid/ask per symbol (another maker, when no
                         market model runs)
    POST /admin/halt     an instrument's trading status
    POST /admin/positions moves an account's position without a fill (a trade
                         MMS never hears of: the reconciliation's tests)
    POST /admin/reset    forget every order, switch, fault and log line
    GET  /admin/stats    requests by route and outcome, live orders, the
                         duplicate-live-order count (must stay 0)
    GET  /admin/requests the request log (arrival time, route, outcome)

Orders go to the venue (`simulator.venue`: the contract's request checks and
a dead-man's switch per (account_id, symbol)) over the matching engine
(`simulator.exchange`), which keeps every live order and the newest finished
ones keyed by (account_id, client_order_id), so placement is idempotent; this
module serves them over HTTP, fires the switches that are not renewed in
time, and injects faults (`simulator.faults`). Run alone (tests), nothing trades
against the orders but /admin/book's; inside the full simulator
(`python -m simulator`) the market model's flow fills them and the feed
publishes every event to Kafka.

Run: python -m simulator.order_service --port 3000 [--instrument SYM:TICK:LOT:MIN_NOTIONAL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from simulator.exchange import DUPLICATE_CLIENT_ORDER_ID
from simulator.faults import Faults
from simulator.model import InstrumentRules
from simulator.venue import DEFAULT_INSTRUMENTS, BadRequest, Venue, decimal_field, order_json

__all__ = ["REQUEST_LOG_LIMIT", "Venue", "create_app", "main"]

SWEEP_INTERVAL_S = 0.01  # how often the dead-man's switches are checked
REQUEST_LOG_LIMIT = 20_000

Handler = Callable[[Request, bool], Awaitable[Response]]
Background = Callable[[], Coroutine[Any, Any, None]]


async def _account_of(request: Request) -> str | None:
    """The account a venue request is for: its account_id parameter, or its body's
    (the body is cached, so the handler reads it again)."""
    account = request.query_params.get("account_id")
    if account is not None or request.method != "POST":
        return account
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        return None
    value = body.get("account_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


class _ConnectionReset(Response):
    """Headers promising a body that never comes, then the server closes the connection."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        # Returning now makes uvicorn close the transport: the client sees the peer hang up.


class _QuietReset(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


class OrderServiceHttp:
    """The routes over one venue: the contract's (each through the fault
    injection, the request counts and the log) and the admin ones."""

    def __init__(
        self,
        venue: Venue,
        *,
        clock_ns: Callable[[], int],
        after_request: Callable[[], None] | None,
    ) -> None:
        self.venue = venue
        self.clock_ns = clock_ns
        self.after_request = after_request
        self.faults = Faults()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LIMIT)

    def log(self, route: str, outcome: str, arrived: float, request: Request, **extra: Any) -> None:
        self.requests[(route, outcome)] += 1
        self.request_log.append(
            {
                "t": arrived,
                "route": route,
                "method": request.method,
                "path": request.url.path,
                "outcome": outcome,
                **extra,
            }
        )

    def venue_route(self, route: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            arrived = time.time()
            faults = self.faults
            applies = route in faults.routes and (
                faults.accounts is None or await _account_of(request) in faults.accounts
            )
            if applies and faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            limited = self._rate_limited(route, arrived, request)
            if limited is not None:
                return limited
            # Always five draws, in this order, so a seed replays the same faults.
            error, reject, hang, reset, error_after = (faults.rng.random() for _ in range(5))
            if applies and error < faults.error_rate:
                self.log(route, "503", arrived, request)
                return _error(503, "UNAVAILABLE", "injected: the venue did nothing")
            try:
                response = await handler(request, applies and reject < faults.reject_rate)
            except BadRequest as exc:
                self.log(route, "400", arrived, request)
                return _error(400, "BAD_REQUEST", str(exc))
            finally:
                if self.after_request is not None:
                    self.after_request()
            draws = (hang, reset, error_after) if applies else None
            return await self._answered(route, arrived, request, response, draws)

        return endpoint

    def _rate_limited(self, route: str, arrived: float, request: Request) -> Response | None:
        limit = self.faults.rate_limit
        if limit is None or route not in limit.routes:
            return None
        wait = limit.retry_after(time.monotonic())
        if wait is None:
            return None
        self.log(route, "429", arrived, request)
        return JSONResponse(
            {"code": "RATE_LIMITED", "reason": f"retry after {wait} s"},
            status_code=429,
            headers={"Retry-After": str(wait)},
        )

    async def _answered(
        self,
        route: str,
        arrived: float,
        request: Request,
        response: Response,
        draws: tuple[float, float, float] | None,
    ) -> Response:
        """The handler's response, or what a fault after acting makes of it."""
        faults = self.faults
        status = response.status_code
        if draws is not None:
            hang, reset, error_after = draws
            if hang < faults.timeout_after_accept_rate:
                self.log(route, "timeout", arrived, request, status=status)
                await asyncio.sleep(faults.hang_ms / 1000)
                return response
            if reset < faults.reset_rate:
                self.log(route, "reset", arrived, request, status=status)
                return _ConnectionReset()
            if error_after < faults.error_after_accept_rate:
                self.log(route, "500", arrived, request, status=status)
                return _error(500, "INTERNAL", "injected: done, then failed to answer")
        self.log(route, str(status), arrived, request)
        return response

    # -------------------------------------------------------------- venue routes

    async def place(self, request: Request, force_reject: bool) -> Response:
        body = await _json(request)
        outcome = self.venue.place(body, now_ns=self.clock_ns(), force_reject=force_reject)
        order = outcome.order
        if order is None:  # not produced by the exchange today; kept for the type
            return _error(409, outcome.code, outcome.reason)
        if not outcome.code:
            return JSONResponse(order_json(order), status_code=200 if outcome.replayed else 201)
        status = 409 if outcome.code == DUPLICATE_CLIENT_ORDER_ID else 422
        return _error(status, outcome.code, outcome.reason, order=order_json(order))

    async def cancel(self, request: Request, _: bool) -> Response:
        account_id = _query_param(request, "account_id")
        symbol = request.query_params.get("symbol")
        order = self.venue.cancel(
            account_id, request.path_params["client_order_id"], symbol, now_ns=self.clock_ns()
        )
        if order is None:
            return _error(404, "NOT_FOUND", "no live order with this client_order_id")
        return JSONResponse(order_json(order))

    async def cancel_all(self, request: Request, _: bool) -> Response:
        body = await _json(request)
        account_id, symbol = body.get("account_id"), body.get("symbol")
        if not isinstance(account_id, str) or not isinstance(symbol, str):
            raise BadRequest("account_id and symbol must be strings")
        cancelled = self.venue.cancel_all(account_id, symbol, now_ns=self.clock_ns())
        return JSONResponse({"cancelled": len(cancelled), "client_order_ids": cancelled})

    async def open_orders(self, request: Request, _: bool) -> Response:
        account_id = _query_param(request, "account_id")
        orders = self.venue.open_orders(account_id, request.query_params.get("symbol"))
        return JSONResponse({"orders": [order_json(order) for order in orders]})

    async def position(self, request: Request, _: bool) -> Response:
        account_id = _query_param(request, "account_id")
        symbol = _query_param(request, "symbol")
        size = self.venue.position(account_id, symbol)
        return JSONResponse({"account_id": account_id, "symbol": symbol, "position": str(size)})

    async def query(self, request: Request, _: bool) -> Response:
        account_id = _query_param(request, "account_id")
        order = self.venue.get(account_id, request.path_params["client_order_id"])
        if order is None:
            return _error(404, "NOT_FOUND", "no order with this client_order_id")
        return JSONResponse(order_json(order))

    async def snapshot(self, request: Request, _: bool) -> Response:
        body = await _json(request)
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise BadRequest("symbol must be a non-empty string")
        self.venue.request_snapshot(symbol)
        return JSONResponse({"symbol": symbol, "requested": True}, status_code=202)

    async def dead_man_switch(self, request: Request, _: bool) -> Response:
        body = await _json(request)
        account_id, symbol, timeout_ms = (
            body.get("account_id"),
            body.get("symbol"),
            body.get("timeout_ms"),
        )
        if not isinstance(account_id, str) or not isinstance(symbol, str):
            raise BadRequest("account_id and symbol must be strings")
        if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms < 0:
            raise BadRequest("timeout_ms must be an integer ≥ 0")
        deadline = self.venue.arm_switch(account_id, symbol, timeout_ms, time.monotonic())
        expires_at = None if deadline is None else int(time.time() * 1000) + timeout_ms
        return JSONResponse(
            {
                "account_id": account_id,
                "symbol": symbol,
                "timeout_ms": timeout_ms,
                "expires_at": expires_at,
            }
        )

    # -------------------------------------------------------------- admin routes

    async def set_faults(self, request: Request) -> Response:
        try:
            self.faults = Faults.parse(await _json(request))
        except BadRequest as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        return JSONResponse(self.faults.as_json())

    async def get_faults(self, request: Request) -> Response:
        return JSONResponse(self.faults.as_json())

    async def set_book(self, request: Request) -> Response:
        try:
            body = await _json(request)
            symbol = body.get("symbol")
            if not isinstance(symbol, str):
                raise BadRequest("symbol must be a string")
            bid, ask = body.get("best_bid"), body.get("best_ask")
            self.venue.set_book(
                symbol,
                None if bid is None else decimal_field(bid, "best_bid"),
                None if ask is None else decimal_field(ask, "best_ask"),
                now_ns=self.clock_ns(),
            )
        except BadRequest as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        return JSONResponse({"symbol": symbol, "best_bid": bid, "best_ask": ask})

    async def set_halt(self, request: Request) -> Response:
        try:
            body = await _json(request)
        except BadRequest as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        symbol, halted = body.get("symbol"), body.get("halted")
        if not isinstance(symbol, str) or not isinstance(halted, bool):
            return _error(400, "BAD_REQUEST", "symbol must be a string, halted a boolean")
        if symbol not in self.venue.exchange.instruments:
            return _error(400, "BAD_REQUEST", f"no instrument {symbol}")
        self.venue.exchange.set_halted(symbol, halted, self.clock_ns())
        if self.after_request is not None:
            self.after_request()
        return JSONResponse({"symbol": symbol, "halted": halted})

    async def adjust_position(self, request: Request) -> Response:
        """Simulator-only: moves an account's position by `delta` without a fill (a
        trade MMS never hears of), for the position reconciliation's tests."""
        try:
            body = await _json(request)
            account_id, symbol = body.get("account_id"), body.get("symbol")
            if not isinstance(account_id, str) or not isinstance(symbol, str):
                raise BadRequest("account_id and symbol must be strings")
            delta = Decimal(str(body.get("delta")))
        except (BadRequest, InvalidOperation) as exc:
            return _error(400, "BAD_REQUEST", f"delta must be a decimal string: {exc}")
        size = self.venue.adjust_position(account_id, symbol, delta)
        return JSONResponse({"account_id": account_id, "symbol": symbol, "position": str(size)})

    async def reset(self, request: Request) -> Response:
        self.venue.reset()
        self.faults = Faults()
        self.requests.clear()
        self.request_log.clear()
        return JSONResponse({"reset": True})

    async def stats(self, request: Request) -> Response:
        by_route: dict[str, dict[str, int]] = {}
        for (route, outcome), n in sorted(self.requests.items()):
            by_route.setdefault(route, {})[outcome] = n
        venue = self.venue
        return JSONResponse(
            {
                "requests": by_route,
                "orders_total": venue.exchange.order_count(),
                "live_orders": venue.live_count(),
                "duplicate_live_orders": venue.duplicate_live_orders(),
                "dead_man_switch": {
                    "armed": len(venue.switches),
                    "fired": venue.switch_firings,
                    "orders_cancelled": venue.switch_cancels,
                },
                "snapshot_requests": dict(venue.snapshot_requests),
            }
        )

    async def get_requests(self, request: Request) -> Response:
        route = request.query_params.get("route")
        lines = [line for line in self.request_log if route is None or line["route"] == route]
        return JSONResponse({"requests": lines})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    # -------------------------------------------------------------- the app

    async def sweep_forever(self) -> None:
        """Fires the dead-man's switches that were not renewed in time."""
        while True:
            fired = self.venue.fire_expired_switches(time.monotonic(), now_ns=self.clock_ns())
            if fired and self.after_request is not None:
                self.after_request()
            await asyncio.sleep(SWEEP_INTERVAL_S)

    def routes(self) -> list[Route]:
        venue_route, coid = self.venue_route, "/v1/orders/{client_order_id}"
        return [
            Route(
                "/v1/orders/cancel-all",
                venue_route("cancel_all", self.cancel_all),
                methods=["POST"],
            ),
            Route("/v1/orders", venue_route("place", self.place), methods=["POST"]),
            Route("/v1/orders", venue_route("open_orders", self.open_orders), methods=["GET"]),
            Route(coid, venue_route("query", self.query), methods=["GET"]),
            Route("/v1/positions", venue_route("position", self.position), methods=["GET"]),
            Route(coid, venue_route("cancel", self.cancel), methods=["DELETE"]),
            Route(
                "/v1/market-data/snapshot-request",
                venue_route("snapshot", self.snapshot),
                methods=["POST"],
            ),
            Route(
                "/v1/dead-man-switch",
                venue_route("dead_man_switch", self.dead_man_switch),
                methods=["PUT"],
            ),
            Route("/admin/faults", self.set_faults, methods=["POST"]),
            Route("/admin/faults", self.get_faults, methods=["GET"]),
            Route("/admin/book", self.set_book, methods=["POST"]),
            Route("/admin/halt", self.set_halt, methods=["POST"]),
            Route("/admin/positions", self.adjust_position, methods=["POST"]),
            Route("/admin/reset", self.reset, methods=["POST"]),
            Route("/admin/stats", self.stats, methods=["GET"]),
            Route("/admin/requests", self.get_requests, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
        ]


def create_app(
    instruments: Iterable[InstrumentRules] = DEFAULT_INSTRUMENTS,
    *,
    venue: Venue | None = None,
    clock_ns: Callable[[], int] = time.time_ns,
    after_request: Callable[[], None] | None = None,
    extra_routes: Sequence[Route] = (),
    background: Sequence[Background] = (),
) -> Starlette:
    """The Order Service over `venue` (a venue of its own over `instruments` when
    none is given). `clock_ns` stamps the exchange's events (the simulator's
    clock, which may run faster than the wall); `after_request` runs after
    every venue route (the simulator flushes its feed there); `extra_routes`
    and `background` tasks are the full simulator's (its admin routes, the
    market)."""
    http = OrderServiceHttp(
        venue or Venue(instruments), clock_ns=clock_ns, after_request=after_request
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(run()) for run in (http.sweep_forever, *background)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return Starlette(routes=[*http.routes(), *extra_routes], lifespan=lifespan)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _query_param(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise BadRequest(f"query parameter {name} is required")
    return value


def _error(status: int, code: str, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "reason": reason, **extra}, status_code=status)


def main() -> None:
    parser = argparse.ArgumentParser(description="TradeX Order Service stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--instrument",
        action="append",
        type=InstrumentRules.parse,
        help="SYMBOL:TICK:LOT:MIN_NOTIONAL (repeatable; replaces the defaults)",
    )
    args = parser.parse_args()
    logging.getLogger("uvicorn.error").addFilter(_QuietReset())
    uvicorn.run(
        create_app(args.instrument or DEFAULT_INSTRUMENTS),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
