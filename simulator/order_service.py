"""Order Service stand-in: the venue's order entry over HTTP, with real state.

The contract is contracts/order-service.openapi.yaml; this module serves it
for tests and local runs, plus simulator-only admin routes:

    POST /admin/faults   latency, 5xx, timeout-after-accept, connection reset,
                         rejects and a rate limit, drawn from a seeded RNG
    POST /admin/book     rests a best bid/ask per symbol (another maker, when no
                         market model runs)
    POST /admin/halt     an instrument's trading status
    POST /admin/reset    forget every order, switch, fault and log line
    GET  /admin/stats    requests by route and outcome, live orders, the
                         duplicate-live-order count (must stay 0)
    GET  /admin/requests the request log (arrival time, route, outcome)

Orders go to the matching engine (`simulator.exchange`), which keeps every
order ever placed, keyed by (account_id, client_order_id), so placement is
idempotent; this module adds the contract's request checks, a dead-man's
switch per (account_id, symbol) that a background task fires when it is not
renewed in time, and the fault injection. Run alone (tests), nothing trades
against the orders but /admin/book's; inside the full simulator
(`python -m simulator`) the market model's flow fills them and the feed
publishes every event to Kafka.

Fault draws: every faulted request draws the same five numbers from one
`random.Random(seed)` in a fixed order, so a seed and a request sequence
replay the same faults.

Run: python -m simulator.order_service --port 3000 [--instrument SYM:TICK:LOT:MIN_NOTIONAL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from simulator.exchange import DUPLICATE_CLIENT_ORDER_ID, Exchange, Order, PlaceOutcome
from simulator.model import INSTRUMENTS, InstrumentRules, Side, is_house_account

ACCOUNT_TYPE = "SYSTEM_MARKET_MAKER"
SIDES = frozenset({"BUY", "SELL"})
# The routes of the production contract, by the names used in faults, stats and the log.
VENUE_ROUTES = frozenset(
    {"place", "cancel", "cancel_all", "open_orders", "query", "snapshot", "dead_man_switch"}
)
SWEEP_INTERVAL_S = 0.01  # how often the dead-man's switches are checked
REQUEST_LOG_LIMIT = 20_000


DEFAULT_INSTRUMENTS = INSTRUMENTS[:2]  # BTC and ETH; `--instrument` replaces them


class BadRequest(Exception):
    """The body does not follow the contract's schema (400)."""


# ---------------------------------------------------------------- the venue's state

BOOK_ACCOUNT = "sim-admin-book"  # rests the best bid and ask set through /admin/book


def order_json(order: Order) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "account_id": order.account_id,
        "user_id": order.user_id,
        "account_type": ACCOUNT_TYPE,
        "symbol": order.symbol,
        "side": order.side,
        "type": "LIMIT",
        "time_in_force": "GTC",
        "post_only": order.post_only,
        "price": format(order.price, "f"),
        "size": format(order.size, "f"),
        "filled_size": format(order.filled_size, "f"),
        "status": order.status,
        "created_at": order.created_ns // 1_000_000,
    }
    if order.reason:
        body["reason"] = order.reason
    return body


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    client_order_id: str
    account_id: str
    user_id: str
    symbol: str
    side: Side
    price: Decimal
    size: Decimal
    refusal: tuple[str, str] | None  # order-entry checks the book does not make


class Venue:
    """Order entry over the matching engine: the request checks of the contract,
    dead-man's switches and snapshot requests. No I/O, no clock of its own."""

    def __init__(
        self,
        instruments: Iterable[InstrumentRules] = DEFAULT_INSTRUMENTS,
        *,
        exchange: Exchange | None = None,
        on_snapshot_request: Callable[[str], None] | None = None,
    ) -> None:
        self.instruments = tuple(instruments)
        self._shared = exchange
        self.on_snapshot_request = on_snapshot_request
        self.reset()

    def reset(self) -> None:
        """A fresh book and ledger (a shared exchange, owned by the simulator, stays)."""
        self.exchange = self._shared or Exchange(self.instruments, forget_finished=is_house_account)
        self.switches: dict[tuple[str, str], float] = {}  # (account, symbol) → monotonic deadline
        self.switch_firings = 0
        self.switch_cancels = 0
        self.snapshot_requests: Counter[str] = Counter()

    # -------------------------------------------------------------- placing

    def place(self, body: dict[str, Any], *, now_ns: int, force_reject: bool) -> PlaceOutcome:
        request = self._parse_order(body, force_reject)
        return self.exchange.place(
            account_id=request.account_id,
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            price=request.price,
            size=request.size,
            ts_ns=now_ns,
            user_id=request.user_id,
            refuse=request.refusal,
        )

    @staticmethod
    def _parse_order(body: dict[str, Any], force_reject: bool) -> PlaceRequest:
        strings = {}
        for name in ("client_order_id", "account_id", "user_id", "symbol", "side"):
            value = body.get(name)
            if not isinstance(value, str) or not value:
                raise BadRequest(f"{name} must be a non-empty string")
            strings[name] = value
        side = strings["side"]
        if side not in SIDES:
            raise BadRequest("side must be BUY or SELL")
        for name in ("account_type", "type", "time_in_force"):
            if not isinstance(body.get(name), str):
                raise BadRequest(f"{name} must be a string")
        if body.get("post_only") is not True:
            raise BadRequest("post_only must be true")
        refusal: tuple[str, str] | None = None
        if force_reject:
            refusal = ("VENUE_REJECT", "rejected by the venue (injected)")
        elif body["account_type"] != ACCOUNT_TYPE:
            refusal = ("INVALID_ACCOUNT_TYPE", f"account_type must be {ACCOUNT_TYPE}")
        elif body["type"] != "LIMIT" or body["time_in_force"] != "GTC":
            refusal = ("UNSUPPORTED_ORDER_TYPE", "only LIMIT GTC post-only orders")
        return PlaceRequest(
            client_order_id=strings["client_order_id"],
            account_id=strings["account_id"],
            user_id=strings["user_id"],
            symbol=strings["symbol"],
            side="BUY" if side == "BUY" else "SELL",
            price=_decimal(body.get("price"), "price"),
            size=_decimal(body.get("size"), "size"),
            refusal=refusal,
        )

    def set_book(
        self, symbol: str, best_bid: Decimal | None, best_ask: Decimal | None, *, now_ns: int
    ) -> None:
        """The other makers' market moved here: one order of BOOK_ACCOUNT rests at
        each given best price (replacing the last ones), after trading through
        whatever resting orders stood in its way, as a moving market would."""
        self.exchange.cancel_all(account_id=BOOK_ACCOUNT, symbol=symbol, ts_ns=now_ns)
        rules = self.exchange.instruments.get(symbol)
        if rules is None:
            raise BadRequest(f"no instrument {symbol}")
        for side, price in (("BUY", best_bid), ("SELL", best_ask)):
            if price is None:
                continue
            lots = max(rules.min_size, rules.min_notional / price) / rules.lot_size
            size = (lots.to_integral_value(rounding=ROUND_CEILING) + 1) * rules.lot_size
            opposite: Side = "SELL" if side == "BUY" else "BUY"
            size += sum(
                (
                    level_size
                    for level_price, level_size in self.exchange.depth(symbol, opposite)
                    if (level_price <= price if side == "BUY" else level_price >= price)
                ),
                Decimal(0),
            )
            outcome = self.exchange.place(
                account_id=BOOK_ACCOUNT,
                client_order_id=f"book-{symbol}-{side}-{now_ns}",
                symbol=symbol,
                side="BUY" if side == "BUY" else "SELL",
                price=price,
                size=size,
                ts_ns=now_ns,
                post_only=False,
            )
            if outcome.code:
                raise BadRequest(f"best {side.lower()} {price}: {outcome.reason}")

    # -------------------------------------------------------------- the rest

    def get(self, account_id: str, client_order_id: str) -> Order | None:
        return self.exchange.order(account_id, client_order_id)

    def cancel(
        self, account_id: str, client_order_id: str, symbol: str | None, *, now_ns: int
    ) -> Order | None:
        """The order, now CANCELLED; None when no live order has this id (404)."""
        return self.exchange.cancel(
            account_id=account_id, client_order_id=client_order_id, ts_ns=now_ns, symbol=symbol
        )

    def cancel_all(
        self, account_id: str, symbol: str, *, now_ns: int, reason: str = "CANCEL_ALL"
    ) -> list[str]:
        orders = self.exchange.cancel_all(
            account_id=account_id, symbol=symbol, ts_ns=now_ns, reason=reason
        )
        return [order.client_order_id for order in orders]

    def open_orders(self, account_id: str, symbol: str | None) -> list[Order]:
        return self.exchange.open_orders(account_id, symbol)

    def request_snapshot(self, symbol: str) -> None:
        self.snapshot_requests[symbol] += 1
        if self.on_snapshot_request is not None:
            self.on_snapshot_request(symbol)

    def arm_switch(self, account_id: str, symbol: str, timeout_ms: int, now: float) -> float | None:
        """Arms or renews; 0 disarms. The monotonic deadline, or None when disarmed."""
        if timeout_ms == 0:
            self.switches.pop((account_id, symbol), None)
            return None
        deadline = now + timeout_ms / 1000
        self.switches[(account_id, symbol)] = deadline
        return deadline

    def fire_expired_switches(self, now: float, *, now_ns: int) -> int:
        """Cancels the orders of every switch past its deadline; the orders cancelled."""
        expired = [key for key, deadline in self.switches.items() if deadline <= now]
        cancelled = 0
        for account_id, symbol in expired:
            del self.switches[(account_id, symbol)]
            self.switch_firings += 1
            cancelled += len(
                self.cancel_all(account_id, symbol, now_ns=now_ns, reason="DEAD_MAN_SWITCH")
            )
        self.switch_cancels += cancelled
        return cancelled

    def live_count(self) -> int:
        """Live orders of the venue's clients (the simulator's own accounts left out)."""
        return sum(
            len(self.exchange.open_orders(account))
            for account in self.exchange.accounts
            if not is_house_account(account)
        )

    def duplicate_live_orders(self) -> int:
        """client_order_ids with more than one live order: the venue's worst bug, must be 0."""
        return self.exchange.duplicate_live_orders()


def _decimal(value: object, name: str) -> Decimal:
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a decimal string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadRequest(f"{name} must be a decimal string") from None
    if not number.is_finite():
        raise BadRequest(f"{name} must be finite")
    return number


# ---------------------------------------------------------------- faults


@dataclass(slots=True)
class RateLimit:
    requests: int
    per_seconds: float
    routes: frozenset[str]
    sent: deque[float] = field(default_factory=deque)

    def retry_after(self, now: float) -> int | None:
        """Seconds to wait when over the limit (the request is refused), else None."""
        while self.sent and self.sent[0] <= now - self.per_seconds:
            self.sent.popleft()
        if len(self.sent) >= self.requests:
            return max(1, math.ceil(self.sent[0] + self.per_seconds - now))
        self.sent.append(now)
        return None


@dataclass(slots=True)
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0  # 503 before anything is done
    error_after_accept_rate: float = 0.0  # done, then 500
    timeout_after_accept_rate: float = 0.0  # done, then no answer for hang_ms
    hang_ms: float = 10_000.0
    reset_rate: float = 0.0  # done, then the connection is closed mid-response
    reject_rate: float = 0.0  # placements refused with VENUE_REJECT
    routes: frozenset[str] = VENUE_ROUTES  # where the probabilistic faults apply
    # Only requests for these accounts suffer them (None: every account's).
    accounts: frozenset[str] | None = None
    rate_limit: RateLimit | None = None
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random)

    RATES = (
        "error_rate",
        "error_after_accept_rate",
        "timeout_after_accept_rate",
        "reset_rate",
        "reject_rate",
    )

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Faults:
        known = {*cls.RATES, "latency_ms", "hang_ms", "routes", "accounts", "rate_limit", "seed"}
        unknown = set(body) - known
        if unknown:
            raise BadRequest(f"unknown fault keys: {sorted(unknown)}")
        faults = cls()
        for name in cls.RATES:
            value = body.get(name, 0.0)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise BadRequest(f"{name} must be a number in [0, 1]")
            setattr(faults, name, float(value))
        for name in ("latency_ms", "hang_ms"):
            value = body.get(name, getattr(faults, name))
            if not isinstance(value, int | float) or value < 0:
                raise BadRequest(f"{name} must be a number ≥ 0")
            setattr(faults, name, float(value))
        faults.routes = _routes(body.get("routes"), VENUE_ROUTES)
        accounts = body.get("accounts")
        if accounts is not None:
            if not isinstance(accounts, list) or not all(
                isinstance(a, str) and a for a in accounts
            ):
                raise BadRequest("accounts must be a list of account ids")
            faults.accounts = frozenset(accounts)
        limit = body.get("rate_limit")
        if limit is not None:
            if not isinstance(limit, dict):
                raise BadRequest("rate_limit must be an object")
            requests, per = limit.get("requests"), limit.get("per_seconds")
            if not isinstance(requests, int) or requests < 1:
                raise BadRequest("rate_limit.requests must be an integer ≥ 1")
            if not isinstance(per, int | float) or per <= 0:
                raise BadRequest("rate_limit.per_seconds must be > 0")
            # Like venues' order-count limits, only placements count unless told otherwise.
            routes = _routes(limit.get("routes"), frozenset({"place"}))
            faults.rate_limit = RateLimit(requests, float(per), routes)
        seed = body.get("seed")
        if seed is not None and not isinstance(seed, int):
            raise BadRequest("seed must be an integer")
        faults.seed = seed
        faults.rng = random.Random(seed)  # noqa: S311 - repeatable faults, not secrets
        return faults

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {name: getattr(self, name) for name in self.RATES}
        body.update(
            latency_ms=self.latency_ms,
            hang_ms=self.hang_ms,
            routes=sorted(self.routes),
            accounts=None if self.accounts is None else sorted(self.accounts),
            seed=self.seed,
            rate_limit=None,
        )
        if self.rate_limit is not None:
            body["rate_limit"] = {
                "requests": self.rate_limit.requests,
                "per_seconds": self.rate_limit.per_seconds,
                "routes": sorted(self.rate_limit.routes),
            }
        return body


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


def _routes(value: object, default: frozenset[str]) -> frozenset[str]:
    if value is None:
        return default
    if not isinstance(value, list) or not set(value) <= VENUE_ROUTES:
        raise BadRequest(f"routes must be a list drawn from {sorted(VENUE_ROUTES)}")
    return frozenset(value)


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


# ---------------------------------------------------------------- HTTP


Handler = Callable[[Request, bool], Awaitable[Response]]


def create_app(
    instruments: Iterable[InstrumentRules] = DEFAULT_INSTRUMENTS,
    *,
    venue: Venue | None = None,
    clock_ns: Callable[[], int] = time.time_ns,
    after_request: Callable[[], None] | None = None,
    extra_routes: Sequence[Route] = (),
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
) -> Starlette:
    """The Order Service over `venue` (a venue of its own over `instruments` when
    none is given). `clock_ns` stamps the exchange's events (the simulator's
    clock, which may run faster than the wall); `after_request` runs after
    every venue route (the simulator flushes its feed there); `extra_routes`
    and `background` tasks are the full simulator's (its admin routes, the
    market)."""
    venue = venue or Venue(instruments)
    state: dict[str, Any] = {"faults": Faults()}
    requests: Counter[tuple[str, str]] = Counter()
    request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LIMIT)

    def log(route: str, outcome: str, arrived: float, request: Request, **extra: Any) -> None:
        requests[(route, outcome)] += 1
        request_log.append(
            {
                "t": arrived,
                "route": route,
                "method": request.method,
                "path": request.url.path,
                "outcome": outcome,
                **extra,
            }
        )

    def venue_route(route: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            arrived = time.time()
            faults: Faults = state["faults"]
            applies = route in faults.routes and (
                faults.accounts is None or await _account_of(request) in faults.accounts
            )
            if applies and faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            limit = faults.rate_limit
            if limit is not None and route in limit.routes:
                wait = limit.retry_after(time.monotonic())
                if wait is not None:
                    log(route, "429", arrived, request)
                    return JSONResponse(
                        {"code": "RATE_LIMITED", "reason": f"retry after {wait} s"},
                        status_code=429,
                        headers={"Retry-After": str(wait)},
                    )
            # Always five draws, in this order, so a seed replays the same faults.
            error, reject, hang, reset, error_after = (faults.rng.random() for _ in range(5))
            if applies and error < faults.error_rate:
                log(route, "503", arrived, request)
                return _error(503, "UNAVAILABLE", "injected: the venue did nothing")
            try:
                response = await handler(request, applies and reject < faults.reject_rate)
            except BadRequest as exc:
                log(route, "400", arrived, request)
                return _error(400, "BAD_REQUEST", str(exc))
            finally:
                if after_request is not None:
                    after_request()
            if applies and hang < faults.timeout_after_accept_rate:
                log(route, "timeout", arrived, request, status=response.status_code)
                await asyncio.sleep(faults.hang_ms / 1000)
                return response
            if applies and reset < faults.reset_rate:
                log(route, "reset", arrived, request, status=response.status_code)
                return _ConnectionReset()
            if applies and error_after < faults.error_after_accept_rate:
                log(route, "500", arrived, request, status=response.status_code)
                return _error(500, "INTERNAL", "injected: done, then failed to answer")
            log(route, str(response.status_code), arrived, request)
            return response

        return endpoint

    # -------------------------------------------------------------- venue routes

    async def place(request: Request, force_reject: bool) -> Response:
        body = await _json(request)
        outcome = venue.place(body, now_ns=clock_ns(), force_reject=force_reject)
        order = outcome.order
        if order is None:  # not produced by the exchange today; kept for the type
            return _error(409, outcome.code, outcome.reason)
        if not outcome.code:
            return JSONResponse(order_json(order), status_code=200 if outcome.replayed else 201)
        status = 409 if outcome.code == DUPLICATE_CLIENT_ORDER_ID else 422
        return _error(status, outcome.code, outcome.reason, order=order_json(order))

    async def cancel(request: Request, _: bool) -> Response:
        account_id = _query_param(request, "account_id")
        symbol = request.query_params.get("symbol")
        order = venue.cancel(
            account_id, request.path_params["client_order_id"], symbol, now_ns=clock_ns()
        )
        if order is None:
            return _error(404, "NOT_FOUND", "no live order with this client_order_id")
        return JSONResponse(order_json(order))

    async def cancel_all(request: Request, _: bool) -> Response:
        body = await _json(request)
        account_id, symbol = body.get("account_id"), body.get("symbol")
        if not isinstance(account_id, str) or not isinstance(symbol, str):
            raise BadRequest("account_id and symbol must be strings")
        cancelled = venue.cancel_all(account_id, symbol, now_ns=clock_ns())
        return JSONResponse({"cancelled": len(cancelled), "client_order_ids": cancelled})

    async def open_orders(request: Request, _: bool) -> Response:
        account_id = _query_param(request, "account_id")
        orders = venue.open_orders(account_id, request.query_params.get("symbol"))
        return JSONResponse({"orders": [order_json(order) for order in orders]})

    async def query(request: Request, _: bool) -> Response:
        account_id = _query_param(request, "account_id")
        order = venue.get(account_id, request.path_params["client_order_id"])
        if order is None:
            return _error(404, "NOT_FOUND", "no order with this client_order_id")
        return JSONResponse(order_json(order))

    async def snapshot(request: Request, _: bool) -> Response:
        body = await _json(request)
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise BadRequest("symbol must be a non-empty string")
        venue.request_snapshot(symbol)
        return JSONResponse({"symbol": symbol, "requested": True}, status_code=202)

    async def dead_man_switch(request: Request, _: bool) -> Response:
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
        deadline = venue.arm_switch(account_id, symbol, timeout_ms, time.monotonic())
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

    async def set_faults(request: Request) -> Response:
        try:
            state["faults"] = Faults.parse(await _json(request))
        except BadRequest as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        return JSONResponse(state["faults"].as_json())

    async def get_faults(request: Request) -> Response:
        return JSONResponse(state["faults"].as_json())

    async def set_book(request: Request) -> Response:
        try:
            body = await _json(request)
            symbol = body.get("symbol")
            if not isinstance(symbol, str):
                raise BadRequest("symbol must be a string")
            bid, ask = body.get("best_bid"), body.get("best_ask")
            venue.set_book(
                symbol,
                None if bid is None else _decimal(bid, "best_bid"),
                None if ask is None else _decimal(ask, "best_ask"),
                now_ns=clock_ns(),
            )
        except BadRequest as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        return JSONResponse({"symbol": symbol, "best_bid": bid, "best_ask": ask})

    async def set_halt(request: Request) -> Response:
        try:
            body = await _json(request)
        except BadRequest as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        symbol, halted = body.get("symbol"), body.get("halted")
        if not isinstance(symbol, str) or not isinstance(halted, bool):
            return _error(400, "BAD_REQUEST", "symbol must be a string, halted a boolean")
        if symbol not in venue.exchange.instruments:
            return _error(400, "BAD_REQUEST", f"no instrument {symbol}")
        venue.exchange.set_halted(symbol, halted, clock_ns())
        if after_request is not None:
            after_request()
        return JSONResponse({"symbol": symbol, "halted": halted})

    async def reset(request: Request) -> Response:
        venue.reset()
        state["faults"] = Faults()
        requests.clear()
        request_log.clear()
        return JSONResponse({"reset": True})

    async def stats(request: Request) -> Response:
        by_route: dict[str, dict[str, int]] = {}
        for (route, outcome), n in sorted(requests.items()):
            by_route.setdefault(route, {})[outcome] = n
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

    async def get_requests(request: Request) -> Response:
        route = request.query_params.get("route")
        lines = [line for line in request_log if route is None or line["route"] == route]
        return JSONResponse({"requests": lines})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def sweep() -> None:
            while True:
                fired = venue.fire_expired_switches(time.monotonic(), now_ns=clock_ns())
                if fired and after_request is not None:
                    after_request()
                await asyncio.sleep(SWEEP_INTERVAL_S)

        tasks = [asyncio.create_task(sweep())]
        tasks += [asyncio.create_task(run()) for run in background]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    coid = "/v1/orders/{client_order_id}"
    return Starlette(
        routes=[
            Route("/v1/orders/cancel-all", venue_route("cancel_all", cancel_all), methods=["POST"]),
            Route("/v1/orders", venue_route("place", place), methods=["POST"]),
            Route("/v1/orders", venue_route("open_orders", open_orders), methods=["GET"]),
            Route(coid, venue_route("query", query), methods=["GET"]),
            Route(coid, venue_route("cancel", cancel), methods=["DELETE"]),
            Route(
                "/v1/market-data/snapshot-request",
                venue_route("snapshot", snapshot),
                methods=["POST"],
            ),
            Route(
                "/v1/dead-man-switch",
                venue_route("dead_man_switch", dead_man_switch),
                methods=["PUT"],
            ),
            Route("/admin/faults", set_faults, methods=["POST"]),
            Route("/admin/faults", get_faults, methods=["GET"]),
            Route("/admin/book", set_book, methods=["POST"]),
            Route("/admin/halt", set_halt, methods=["POST"]),
            Route("/admin/reset", reset, methods=["POST"]),
            Route("/admin/stats", stats, methods=["GET"]),
            Route("/admin/requests", get_requests, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            *extra_routes,
        ],
        lifespan=lifespan,
    )


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
