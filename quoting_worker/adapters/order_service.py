"""The Order Service client and the engine's action sink built on it.

Contract: contracts/order-service.openapi.yaml. Reliability rules
(RELIABILITY.md) and how this module keeps them:

Placement outcomes (`OrderServiceClient.place`)
    201/200 with a live status  → OrderAccepted
    200 with CANCELLED/FILLED   → OrderCancelled (a replay of an order already gone)
    422, or 400                 → OrderRejected(reason=the venue's code); nothing rests
    timeout, connection error,
    5xx, 409                    → PlaceOutcomeUnknown, never "failed": the venue may
                                  hold the order; the engine resolves it by querying
    429                         → wait out Retry-After, send again (same id); still
                                  429 after `max_rate_limited_retries` → OrderRejected
                                  ("RATE_LIMITED"): a 429 is never processed
The client does not retry a placement after an unknown outcome by itself; a
caller that retries passes the same PlaceOrder, so the same client order id,
and the venue answers 200 with the order it already holds (idempotent on
(account_id, client_order_id)). Every placement carries account_id, user_id
and account_type SYSTEM_MARKET_MAKER.

Prices and sizes go out as decimal strings: `place` takes them as strings;
`OrderServiceSink` makes them from ticks and lots with the symbol's
`Instrument` (`format(instrument.price(ticks), "f")`), never through float.

Cancel outcomes (`cancel`)
    200                         → OrderCancelled
    404 ("no live order")       → query the id: found and final (CANCELLED,
                                  FILLED, REJECTED) → OrderCancelled, since
                                  the order is gone for good (fills arrive on
                                  their own); found and live (the cancel raced
                                  its placement) → one more DELETE; not found
                                  → None, because a 404 is not final by itself:
                                  the sink hands the engine the query result
                                  and the engine counts not-founds
    timeout, 5xx                → retried (cancels are idempotent) up to
                                  `attempts`, then None
Queries, open orders, cancel-all, the dead-man's switch and snapshot requests
retry transport errors and 5xx the same way, then raise OrderServiceUnavailable.

Rate limits: a token bucket (`RateBudget`, defaults 20 tokens, refilled at
20/s, 5 held in reserve). Placements, queries, open orders and snapshot
requests take a token only while more than `reserve` remain; cancels,
cancel-alls and dead-man's-switch renewals may take the last one. So a burst
of placements always leaves 5 requests for cancels at once. After a 429 the
Retry-After (seconds or an HTTP date; 1 s when absent, 60 s at most) closes
the window for that request class and every class of lower priority (place <
query < control < cancel): no such request leaves the client until it ends.
A 429 on a placement so stops placements only; cancels still go.

Outcomes are counted in `OrderServiceClient.outcomes` ("place.accepted",
"cancel.not_found", ...) for metrics.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import itertools
import json as jsonlib
import logging
import time
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from functools import partial
from typing import Any
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy
from opentelemetry.trace import SpanKind

from common import tracing
from common.failpoints import failpoint
from quoting_worker.core.types import (
    Action,
    CancelAll,
    CancelOrder,
    Event,
    Instrument,
    OrderAccepted,
    OrderCancelled,
    OrderQueryResult,
    OrderRejected,
    PlaceOrder,
    PlaceOutcomeUnknown,
    QueryOrder,
    RequestSnapshot,
    Side,
)

logger = logging.getLogger(__name__)

ACCOUNT_TYPE = "SYSTEM_MARKET_MAKER"
LIVE_STATUSES = frozenset({"NEW", "OPEN", "PARTIALLY_FILLED"})
FINAL_STATUSES = frozenset({"FILLED", "CANCELLED", "REJECTED"})
DEFAULT_RETRY_AFTER_S = 1.0
# How many recently confirmed cancels the sink remembers, to answer a query the
# engine decided while the cancel was still waiting for the request budget.
SETTLED_MEMORY = 4096
MAX_RETRY_AFTER_S = 60.0
TOKEN_EPSILON = 1e-9

PlaceResult = OrderAccepted | OrderRejected | PlaceOutcomeUnknown | OrderCancelled
Taken = frozenset[str] | None  # the ids a cancel-all took; None when it failed
BeforePlaces = Callable[[list[PlaceOrder]], Awaitable[None]]


@dataclass(slots=True)
class _Placing:
    """A placement under way: its place in sequence, its answer once it has one,
    and whether a cancel withdrew it before it left."""

    seq: int
    answer: asyncio.Future[PlaceResult]
    withdrawn: bool = False


@dataclass(slots=True)
class _Cancelling:
    """A cancel under way: its place in sequence, and a future done when answered."""

    cancel: CancelOrder
    seq: int
    done: asyncio.Future[None]


class OrderServiceUnavailable(Exception):
    """No answer that settles the request (timeouts, 5xx, 429s past the retries)."""


class Withdrawn(Exception):
    """A placement's gate closed while it waited for its turn: not sent."""


class TransportError(Exception):
    """No answer came (no connection, a reset, a timeout): whether the venue
    acted on the request is unknown."""


class TransportTimeout(TransportError):
    """No answer within the client's timeout."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The venue's answer to one request, read in full."""

    status_code: int
    headers: CIMultiDictProxy[str]
    content: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class RequestClass(IntEnum):
    """Priority of a request for the rate budget; higher may use the reserve."""

    PLACE = 0
    QUERY = 1  # queries, open orders, snapshot requests
    CONTROL = 2  # dead-man's-switch renewals
    CANCEL = 3  # cancels and cancel-alls

    @property
    def uses_reserve(self) -> bool:
        return self >= RequestClass.CONTROL


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as the venue reports it."""

    order_id: str
    client_order_id: str
    account_id: str
    symbol: str
    side: Side
    price: Decimal
    size: Decimal
    filled_size: Decimal
    status: str

    @property
    def open(self) -> bool:
        return self.status in LIVE_STATUSES

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> VenueOrder:
        return cls(
            order_id=str(body["order_id"]),
            client_order_id=str(body["client_order_id"]),
            account_id=str(body["account_id"]),
            symbol=str(body["symbol"]),
            side=Side(body["side"]),
            price=Decimal(body["price"]),
            size=Decimal(body["size"]),
            filled_size=Decimal(body.get("filled_size", "0")),
            status=str(body["status"]),
        )


class RateBudget:
    """A token bucket with a reserve only cancels and renewals may spend, and
    per-class windows closed by a venue's 429 Retry-After."""

    def __init__(
        self,
        *,
        rate_per_s: float = 20.0,
        burst: int = 20,
        reserve: int = 5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or not 0 <= reserve < burst:
            raise ValueError("need rate_per_s > 0, burst ≥ 1 and 0 ≤ reserve < burst")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.reserve = reserve
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._refilled = clock()
        self._closed_until = dict.fromkeys(RequestClass, 0.0)
        # Requests of a class that found no token wait here, first come first
        # served, and one watcher task per class watches the bucket for them. It
        # hands out every token the bucket holds when it wakes: one at a time, a
        # backlog was served at one request per turn of a busy event loop (about
        # 30 a second at 200 pools, against a budget of 1,000: bench/load.py).
        # Only the watcher watches: every waiter polling the bucket woke
        # thousands of tasks per refill and starved the loop.
        self._waiting: dict[RequestClass, deque[asyncio.Future[None]]] = {
            kind: deque() for kind in RequestClass
        }
        self._watchers: dict[RequestClass, asyncio.Task[None]] = {}

    def closed_for(self, kind: RequestClass) -> float:
        """Seconds until a Retry-After window lets `kind` out again (0 when open)."""
        return max(0.0, self._closed_until[kind] - self._clock())

    def close(self, kind: RequestClass, seconds: float) -> None:
        """A 429 on `kind`: no request of it, or of any lower class, for `seconds`."""
        until = self._clock() + seconds
        for other in RequestClass:
            if other <= kind:
                self._closed_until[other] = max(self._closed_until[other], until)

    @property
    def waiting(self) -> int:
        """Requests waiting for a token, of every class."""
        return sum(len(queue) for queue in self._waiting.values())

    async def acquire(self, kind: RequestClass) -> None:
        """A token for one request of `kind`, in the order requests asked for one."""
        queue = self._waiting[kind]
        if not queue and self._take(kind):
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        watcher = self._watchers.get(kind)
        if watcher is None or watcher.done():
            self._watchers[kind] = asyncio.create_task(self._watch(kind))
        await turn  # cancelled: the watcher passes over it

    def _take(self, kind: RequestClass) -> bool:
        """One token for `kind` if its window is open and the bucket has one above
        the class's floor (the reserve is for cancels and renewals)."""
        if self.closed_for(kind) > 0:
            return False
        self._refill()
        # (A refill computed to the token can land a rounding error short.)
        if self._tokens >= self._floor(kind) + 1 - TOKEN_EPSILON:
            self._tokens = max(0.0, self._tokens - 1)
            return True
        return False

    def _floor(self, kind: RequestClass) -> int:
        return 0 if kind.uses_reserve else self.reserve

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(
            float(self.burst), self._tokens + (now - self._refilled) * self.rate_per_s
        )
        self._refilled = now

    async def _watch(self, kind: RequestClass) -> None:
        queue = self._waiting[kind]
        while queue:
            wait = self.closed_for(kind)
            if wait > 0:
                await self._sleep(wait)
                continue
            while queue and (queue[0].done() or self._take(kind)):
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
            if queue:
                await self._sleep((self._floor(kind) + 1 - self._tokens) / self.rate_per_s)


def retry_after_seconds(value: str | None) -> float:
    """Retry-After as seconds (delta-seconds or an HTTP date), within [0, 60]."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_S
        seconds = when.timestamp() - time.time()
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


def _may_cross(place: PlaceOrder, cancel: CancelOrder) -> bool:
    """Whether `place` could trade against the order `cancel` withdraws (unknown
    side or price: assume it could)."""
    if cancel.side is None or cancel.price_ticks is None:
        return True
    if cancel.side is place.side:
        return False
    if place.side is Side.BUY:
        return place.price_ticks >= cancel.price_ticks
    return place.price_ticks <= cancel.price_ticks


def decimal_str(value: Decimal) -> str:
    """Plain decimal notation ("0.001", never "1E-3"), as the contract asks."""
    return format(value, "f")


class OrderServiceClient:
    """One pooled HTTP client per process; safe to share between engines."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 2.0,
        user_ids: Mapping[str, str] | None = None,
        budget: RateBudget | None = None,
        attempts: int = 3,
        max_rate_limited_retries: int = 3,
        backoff_s: float = 0.05,
        clock_ns: Callable[[], int] = time.time_ns,
        max_connections: int = 50,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        """`user_ids`: account_id → user_id (may be a dict the caller keeps up to
        date); `place(user_id=...)` overrides it. `attempts`: tries per idempotent
        request other than a placement (a placement is sent once).
        `trace_configs`: aiohttp's request hooks (tests and benches watch with them).

        aiohttp, not httpx: at 200 pools the worker's one event loop sends
        hundreds of requests a second, and httpx (over httpcore and anyio) cost
        2.0 ms of CPU a request on one connection and 4.8 ms on 50, against
        aiohttp's 0.4–0.55 ms (bench/http_client.py)."""
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._trace_configs = list(trace_configs)
        self._session: aiohttp.ClientSession | None = None  # opened on the loop that uses it
        self.user_ids: Mapping[str, str] = user_ids if user_ids is not None else {}
        self.budget = budget or RateBudget()
        self.attempts = max(1, attempts)
        self.max_rate_limited_retries = max_rate_limited_retries
        self.backoff_s = backoff_s
        self.clock_ns = clock_ns
        self.outcomes: Counter[str] = Counter()
        # Told (operation, outcome, seconds) of every HTTP exchange: the metrics.
        self.on_request: Callable[[str, str, float], None] | None = None
        # Requests beyond the pool's connections wait here, in order, and a
        # placement's gate is asked only once a connection is its own.
        self._in_flight = asyncio.Semaphore(max_connections)
        self.max_connections = max_connections

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> OrderServiceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -------------------------------------------------------------- transport

    async def _send(
        self,
        kind: RequestClass,
        method: str,
        url: str,
        *,
        attempts: int,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        gate: Callable[[], bool] | None = None,
    ) -> Reply:
        """Sends within the budget; retries 429s (after Retry-After) and, while
        `attempts` last, transport errors and 5xx. Returns the last reply;
        raises the last TransportError. `gate`: asked each time the request
        is about to leave (its turn in the budget and a connection come after
        waits, a Retry-After's among them); Withdrawn when it says no."""
        tries = rate_limited = 0
        while True:
            await self.budget.acquire(kind)
            tries += 1
            try:
                response = await self._request(method, url, json=json, params=params, gate=gate)
            except TransportError:
                if tries >= attempts:
                    raise
                await asyncio.sleep(self.backoff_s * 2 ** (tries - 1))
                continue
            if response.status_code == 429:
                self.outcomes[f"{kind.name.lower()}.rate_limited"] += 1
                self.budget.close(kind, retry_after_seconds(response.headers.get("Retry-After")))
                if rate_limited >= self.max_rate_limited_retries:
                    return response
                rate_limited += 1
                tries -= 1  # a refused request is not an attempt
                continue
            if response.status_code >= 500 and tries < attempts:
                await asyncio.sleep(self.backoff_s * 2 ** (tries - 1))
                continue
            return response

    async def _request(
        self,
        method: str,
        url: str,
        *,
        json: Any,
        params: Mapping[str, str] | None,
        gate: Callable[[], bool] | None = None,
    ) -> Reply:
        """One HTTP exchange; at most `max_connections` are under way at once. Timed
        for `on_request`, and traced when tracing is on (the span's context goes to
        the venue in `traceparent`)."""
        async with self._in_flight:
            if gate is not None and not gate():
                raise Withdrawn(url)
            if self.on_request is None and not tracing.enabled:
                return await self._exchange(method, url, json=json, params=params)
            return await self._observed(method, url, json=json, params=params)

    async def _observed(
        self, method: str, url: str, *, json: Any, params: Mapping[str, str] | None
    ) -> Reply:
        operation = operation_of(method, url)
        started = time.perf_counter()
        outcome = "transport_error"
        with tracing.span(
            f"order_service {operation}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": method, "mms.operation": operation},
        ) as span:
            try:
                reply = await self._exchange(
                    method, url, json=json, params=params, headers=tracing.carrier()
                )
                outcome = outcome_of(reply.status_code)
                if span is not None:
                    span.set_attribute("http.response.status_code", reply.status_code)
                return reply
            except TransportTimeout:
                outcome = "timeout"
                raise
            finally:
                if self.on_request is not None:
                    self.on_request(operation, outcome, time.perf_counter() - started)

    async def _exchange(
        self,
        method: str,
        url: str,
        *,
        json: Any,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """The one place a request meets the network: sent, and its answer read in
        full. No redirect is followed. Raises TransportError when no answer came."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                # Per phase, as a slow answer must not be cut short by a slow connect.
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=self.timeout_s,
                    sock_connect=self.timeout_s,
                    sock_read=self.timeout_s,
                ),
                trace_configs=self._trace_configs,
            )
        try:
            async with self._session.request(
                method,
                self.base_url + url,
                json=json,
                params=params,
                headers=headers,
                allow_redirects=False,
            ) as response:
                return Reply(response.status, response.headers, await response.read())
        except TimeoutError as exc:
            raise TransportTimeout(f"{method} {url}: no answer in {self.timeout_s} s") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{method} {url}: {exc!r}") from exc

    async def _checked(
        self,
        kind: RequestClass,
        method: str,
        url: str,
        *,
        ok: tuple[int, ...] = (200,),
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Reply:
        try:
            response = await self._send(
                kind, method, url, attempts=self.attempts, json=json, params=params
            )
        except TransportError as exc:
            raise OrderServiceUnavailable(f"{method} {url}: {exc!r}") from exc
        if response.status_code not in ok:
            raise OrderServiceUnavailable(f"{method} {url}: HTTP {response.status_code}")
        return response

    # -------------------------------------------------------------- orders

    async def place(
        self,
        order: PlaceOrder,
        *,
        symbol: str,
        price: str,
        size: str,
        user_id: str | None = None,
        gate: Callable[[], bool] | None = None,
    ) -> PlaceResult:
        """Places one post-only GTC limit order; `price` and `size` are decimal strings.
        `gate`: whether the order may still go, asked as it leaves; if not, it is
        never sent and comes back as cancelled."""
        coid = order.client_order_id
        uid = user_id or self.user_ids.get(order.account_id)
        if not uid:
            raise ValueError(f"no user_id for account {order.account_id}")
        body = {
            "client_order_id": coid,
            "account_id": order.account_id,
            "user_id": uid,
            "account_type": ACCOUNT_TYPE,
            "symbol": symbol,
            "side": str(order.side),
            "type": "LIMIT",
            "time_in_force": "GTC",
            "post_only": True,
            "price": price,
            "size": size,
        }
        try:
            response = await self._send(
                RequestClass.PLACE, "POST", "/v1/orders", attempts=1, json=body, gate=gate
            )
        except TransportError:
            return self._unknown(coid, "transport")
        except Withdrawn:
            self.outcomes["place.withdrawn"] += 1
            return OrderCancelled(coid, self.clock_ns())
        now = self.clock_ns()
        status = response.status_code
        if status in (200, 201):
            venue_status = str(_body(response).get("status", ""))
            if venue_status in LIVE_STATUSES:
                self.outcomes["place.accepted"] += 1
                return OrderAccepted(coid, str(_body(response).get("order_id", "")), now)
            if venue_status in ("CANCELLED", "FILLED"):
                self.outcomes["place.already_final"] += 1
                return OrderCancelled(coid, now)
            return self._unknown(coid, "odd_status")
        if status == 429:
            self.outcomes["place.rejected"] += 1
            return OrderRejected(coid, "RATE_LIMITED", now)
        if status in (400, 422):
            self.outcomes["place.rejected"] += 1
            return OrderRejected(coid, str(_body(response).get("code") or f"HTTP_{status}"), now)
        # 5xx, 409 (the id holds some other order) or anything unexpected: ask later.
        return self._unknown(coid, "conflict" if status == 409 else "http_error")

    def _unknown(self, coid: str, why: str) -> PlaceOutcomeUnknown:
        self.outcomes["place.unknown"] += 1
        self.outcomes[f"place.unknown.{why}"] += 1
        return PlaceOutcomeUnknown(coid, self.clock_ns())

    async def lookup(self, client_order_id: str, account_id: str) -> VenueOrder | None:
        """The venue's record of this id, or None on 404."""
        response = await self._checked(
            RequestClass.QUERY,
            "GET",
            f"/v1/orders/{_path(client_order_id)}",
            ok=(200, 404),
            params={"account_id": account_id},
        )
        if response.status_code == 404:
            self.outcomes["query.not_found"] += 1
            return None
        self.outcomes["query.found"] += 1
        return VenueOrder.from_json(_body(response))

    async def query(self, client_order_id: str, account_id: str) -> OrderQueryResult:
        """found=False on 404, which the engine counts before giving an order up."""
        order = await self.lookup(client_order_id, account_id)
        return OrderQueryResult(
            client_order_id,
            found=order is not None,
            open=order is not None and order.open,
            ts_ns=self.clock_ns(),
        )

    async def cancel(
        self, client_order_id: str, *, account_id: str, symbol: str
    ) -> OrderCancelled | None:
        """OrderCancelled only when the venue confirms the order is gone (see the
        module docstring); None when that is not known."""
        outcome = await self.cancel_outcome(client_order_id, account_id=account_id, symbol=symbol)
        return outcome if isinstance(outcome, OrderCancelled) else None

    async def cancel_outcome(
        self, client_order_id: str, *, account_id: str, symbol: str
    ) -> OrderCancelled | OrderQueryResult | None:
        """`cancel`, also returning the query result when a 404 left it unsettled."""
        url = f"/v1/orders/{_path(client_order_id)}"
        params = {"account_id": account_id, "symbol": symbol}
        for _ in range(2):  # a second DELETE only when the order turned out live
            try:
                response = await self._send(
                    RequestClass.CANCEL, "DELETE", url, attempts=self.attempts, params=params
                )
            except TransportError:
                self.outcomes["cancel.unknown"] += 1
                return None
            if response.status_code == 200:
                self.outcomes["cancel.cancelled"] += 1
                return OrderCancelled(client_order_id, self.clock_ns())
            if response.status_code != 404:
                self.outcomes["cancel.unknown"] += 1
                return None
            try:
                order = await self.lookup(client_order_id, account_id)
            except OrderServiceUnavailable:
                self.outcomes["cancel.unknown"] += 1
                return None
            if order is None:
                self.outcomes["cancel.not_found"] += 1
                return OrderQueryResult(client_order_id, False, False, self.clock_ns())
            if order.status in FINAL_STATUSES:
                self.outcomes["cancel.already_final"] += 1
                return OrderCancelled(client_order_id, self.clock_ns())
        self.outcomes["cancel.still_open"] += 1
        return OrderQueryResult(client_order_id, True, True, self.clock_ns())

    async def cancel_all(self, account_id: str, symbol: str) -> int:
        """How many orders the venue cancelled."""
        cancelled, _ = await self.cancel_all_ids(account_id, symbol)
        return cancelled

    async def cancel_all_ids(self, account_id: str, symbol: str) -> tuple[int, list[str]]:
        """How many orders the venue cancelled, and their client order ids."""
        response = await self._checked(
            RequestClass.CANCEL,
            "POST",
            "/v1/orders/cancel-all",
            json={"account_id": account_id, "symbol": symbol},
        )
        body = _body(response)
        self.outcomes["cancel_all.done"] += 1
        return int(body.get("cancelled", 0)), [str(c) for c in body.get("client_order_ids", [])]

    async def open_orders(self, account_id: str, symbol: str) -> list[VenueOrder]:
        response = await self._checked(
            RequestClass.QUERY,
            "GET",
            "/v1/orders",
            params={"account_id": account_id, "symbol": symbol},
        )
        return [VenueOrder.from_json(order) for order in _body(response).get("orders", [])]

    async def renew_dead_mans_switch(
        self, account_id: str, symbol: str, timeout_ms: int
    ) -> int | None:
        """Arms or renews the venue's timer (0 disarms); its expiry in epoch ms."""
        response = await self._checked(
            RequestClass.CONTROL,
            "PUT",
            "/v1/dead-man-switch",
            json={"account_id": account_id, "symbol": symbol, "timeout_ms": timeout_ms},
        )
        self.outcomes["dead_man_switch.renewed"] += 1
        expires_at = _body(response).get("expires_at")
        return None if expires_at is None else int(expires_at)

    async def request_snapshot(self, symbol: str) -> None:
        await self._checked(
            RequestClass.QUERY,
            "POST",
            "/v1/market-data/snapshot-request",
            ok=(200, 202),
            json={"symbol": symbol},
        )
        self.outcomes["snapshot.requested"] += 1


def operation_of(method: str, url: str) -> str:
    """The contract's operation a request is (a bounded metric label)."""
    if url.startswith("/v1/orders"):
        if url == "/v1/orders/cancel-all":
            return "cancel_all"
        if url == "/v1/orders":
            return "place" if method == "POST" else "open_orders"
        return "cancel" if method == "DELETE" else "query"
    if url.startswith("/v1/dead-man-switch"):
        return "dead_mans_switch"
    if url.startswith("/v1/market-data/snapshot-request"):
        return "snapshot"
    return "other"


def outcome_of(status: int) -> str:
    if status < 300:
        return "ok"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    return "rejected"


def _body(response: Reply) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _path(client_order_id: str) -> str:
    return quote(client_order_id, safe="")


# ---------------------------------------------------------------- the action sink


EventCallback = Callable[[Event], object]  # may return an awaitable (asyncio.Queue.put)


class OrderServiceSink:
    """Carries out the engine's order actions and feeds back what the venue said.

    Within a batch, what need not go never does: a placement the batch also
    cancels, or any placement once the symbol's gate (`may_place`) is closed, is
    withdrawn (it comes back as cancelled) with its cancel and its queries; an
    order is queried once, and not at all if the batch cancels it.

    Batches do not wait for one another: each `execute` sends at once what
    needs nothing else, so a placement left hanging (up to the client's
    timeout) holds up only what truly depends on it. What does, across every
    batch under way:
    - a cancel of an order whose placement has not left yet withdraws it (it is
      never sent and comes back as cancelled; the cancel then needs no request);
      a cancel of one whose placement is out waits for its answer, and goes if
      the venue may hold the order (accepted, or outcome unknown);
    - a query of an order whose placement or cancel is under way is not sent
      (that answer will say; the engine asks again on its timer if it does not);
    - a second cancel of an order whose cancel is under way is not sent;
    - placements go once `before_places` (the order journal's write of the
      placements that go) has finished, and each after the cancels under way it
      could cross (a post-only order that crosses a resting one of the pool is
      a reject, or a self-trade) and the cancel-alls under way for its account
      and symbol. The engine already counts an order being cancelled as
      resting, so a placement overlapping its cancel never exceeds a limit.
    Cancels and cancel-alls otherwise go at once, so a kill's cancel-all never
    waits behind a placement; a cancel whose account the same batch cancels all
    of (a pause, halt or kill) is left to that cancel-all, and sent only if the
    cancel-all failed or did not take the order.

    Events go to `on_event` as each answer arrives: OrderAccepted /
    OrderRejected / PlaceOutcomeUnknown / OrderCancelled for placements;
    OrderCancelled, or the OrderQueryResult of an unsettled 404, for cancels;
    OrderCancelled for every order a cancel-all took; OrderQueryResult for
    queries. A query the venue does not answer yields nothing (the engine asks
    again on its timer); a failed cancel-all is logged and counted in
    `failures`. RiskTriggered and SimulatedQuote are not order traffic and are
    left to the runquoter. If `before_places` raises, no placement of its batch
    is sent and the error propagates once the batch's other requests are done.

    A query of an order whose cancel the venue confirmed in the last
    SETTLED_MEMORY confirmations is answered from that confirmation, without a
    request: under a tight request budget the engine's query timer fires while
    the cancel still waits its turn, and those queries would eat the budget.
    `saved[kind]` counts the requests spared.
    """

    def __init__(
        self,
        client: OrderServiceClient,
        *,
        instruments: Mapping[str, Instrument] | Callable[[str], Instrument],
        on_event: EventCallback,
        may_place: Callable[[str], bool] | None = None,
    ) -> None:
        self.client = client
        self._instruments = instruments
        self.on_event = on_event
        # Whether the symbol's gate is open, asked as each placement leaves: one
        # that waited (rate budget, Retry-After, connections) past a kill never goes.
        self.may_place = may_place
        # Placements whose outcome is unknown, since when (monotonic s); the first
        # answer to a query of one is its resolution, timed for `on_resolved`.
        self.unknown_since: OrderedDict[str, float] = OrderedDict()
        self.on_resolved: Callable[[float], None] | None = None
        self.failures: Counter[str] = Counter()
        self.saved: Counter[str] = Counter()
        self._settled: OrderedDict[str, OrderCancelled] = OrderedDict()
        # Under way, from the moment `execute` is called until answered:
        # each with its place in sequence, and a future done when it is answered.
        self._seq = itertools.count()
        self._placing: dict[str, _Placing] = {}
        # Per symbol (what a placement could cross), by client order id.
        self._cancelling: defaultdict[str, dict[str, _Cancelling]] = defaultdict(dict)
        # Per symbol and account, by sequence: each future holds the ids its
        # cancel-all took (None: it failed).
        self._cancelling_all: defaultdict[tuple[str, str], dict[int, asyncio.Future[Taken]]] = (
            defaultdict(dict)
        )

    def instrument(self, symbol: str) -> Instrument:
        if callable(self._instruments):
            return self._instruments(symbol)
        return self._instruments[symbol]

    async def execute(
        self,
        symbol: str,
        actions: Sequence[Action],
        *,
        before_places: BeforePlaces | None = None,
    ) -> None:
        """Sends `actions` and returns when every one of them is answered. Call it
        for the next batch without waiting for this one: the ordering above holds
        across batches. What is under way is registered before the first await, in
        sequence (a batch's cancels before its placements), and a request only
        ever waits for one registered before it, so waits can never form a cycle.
        `before_places` is given the placements that will go (none withdrawn)."""
        loop = asyncio.get_running_loop()
        gate_open = self.may_place is None or self.may_place(symbol)
        cancel_ids = {a.client_order_id for a in actions if isinstance(a, CancelOrder)}
        withdrawn = {
            a.client_order_id
            for a in actions
            if isinstance(a, PlaceOrder) and (not gate_open or a.client_order_id in cancel_ids)
        }
        cancelling = self._cancelling[symbol]
        work: list[Awaitable[Any]] = []
        mine: list[str] = []  # this batch's cancels, cleared if never started
        mine_all: list[tuple[str, int]] = []
        covering: dict[str, asyncio.Future[Taken]] = {}  # this batch's cancel-alls
        for action in actions:
            if isinstance(action, CancelAll):
                for account_id in action.account_ids:
                    seq = next(self._seq)
                    taken: asyncio.Future[Taken] = loop.create_future()
                    self._cancelling_all[symbol, account_id][seq] = taken
                    covering.setdefault(account_id, taken)
                    mine_all.append((account_id, seq))
                    work.append(self._cancel_all(symbol, account_id, seq))
        for action in actions:
            if isinstance(action, CancelOrder):
                coid = action.client_order_id
                if coid in withdrawn:
                    continue  # its placement never goes: nothing to cancel
                if coid in cancelling:
                    self.saved["cancel"] += 1  # the cancel under way answers it
                    continue
                cancelling[coid] = _Cancelling(action, next(self._seq), loop.create_future())
                mine.append(coid)
                work.append(self._cancel(symbol, action, covering.get(action.account_id)))
        places: list[PlaceOrder] = []
        asked: set[str] = set()
        for action in actions:
            if isinstance(action, PlaceOrder):
                coid = action.client_order_id
                if coid in withdrawn:
                    self.client.outcomes["place.withdrawn"] += 1
                    work.append(self._emit(OrderCancelled(coid, self.client.clock_ns())))
                else:
                    self._placing[coid] = _Placing(next(self._seq), loop.create_future())
                    places.append(action)
            elif isinstance(action, QueryOrder):
                coid = action.client_order_id
                if coid in asked or coid in cancel_ids or coid in withdrawn:
                    self.saved["query"] += 1  # asked already, or its cancel or withdrawal answers
                    continue
                asked.add(coid)
                work.append(self._query(symbol, action))
            elif isinstance(action, RequestSnapshot):
                work.append(self._snapshot(symbol))
        if places:
            work.append(self._places(symbol, places, before_places))
        try:
            results = await asyncio.gather(*work, return_exceptions=True)
        finally:
            # Anything cancelled before it started must not hold up later batches.
            for coid in mine:
                self._cancel_done(symbol, coid)
            for account_id, seq in mine_all:
                self._cancel_all_done(symbol, account_id, seq)
            for place in places:
                coid = place.client_order_id
                self._settle_placing(coid, PlaceOutcomeUnknown(coid, 0))
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _places(
        self, symbol: str, places: list[PlaceOrder], before: BeforePlaces | None
    ) -> None:
        try:
            if before is not None:
                await before(places)
        except BaseException:
            for place in places:  # never sent: a cancel waiting on one needs no request
                coid = place.client_order_id
                self._settle_placing(coid, OrderCancelled(coid, 0))
            raise
        failpoint("place.recorded")
        await asyncio.gather(*(self._place(symbol, p) for p in places))

    def _blockers(self, symbol: str, place: PlaceOrder) -> list[asyncio.Future[Any]]:
        """What `place` must wait for: the cancels registered before it that it
        could cross, and the cancel-alls registered before it for its account."""
        placing = self._placing.get(place.client_order_id)
        if placing is None:
            return []
        seq = placing.seq
        blockers: list[asyncio.Future[Any]] = [
            c.done
            for c in self._cancelling[symbol].values()
            if c.seq < seq and _may_cross(place, c.cancel)
        ]
        alls = self._cancelling_all.get((symbol, place.account_id))
        if alls:
            blockers += [taken for all_seq, taken in alls.items() if all_seq < seq]
        return blockers

    def _settle_placing(self, coid: str, result: PlaceResult) -> None:
        placing = self._placing.pop(coid, None)
        if placing is not None and not placing.answer.done():
            placing.answer.set_result(result)

    def _cancel_all_done(self, symbol: str, account_id: str, seq: int, taken: Taken = None) -> None:
        under_way = self._cancelling_all.get((symbol, account_id))
        if under_way is None:
            return
        future = under_way.pop(seq, None)
        if not under_way:
            del self._cancelling_all[symbol, account_id]
        if future is not None and not future.done():
            future.set_result(taken)

    def _cancel_done(self, symbol: str, coid: str) -> None:
        cancelling = self._cancelling[symbol].pop(coid, None)
        if cancelling is not None and not cancelling.done.done():
            cancelling.done.set_result(None)

    async def _emit(self, event: Event) -> None:
        if isinstance(event, OrderCancelled):
            settled = self._settled
            settled[event.client_order_id] = event
            if len(settled) > SETTLED_MEMORY:
                settled.popitem(last=False)
        result = self.on_event(event)
        if inspect.isawaitable(result):
            await result

    async def _place(self, symbol: str, order: PlaceOrder) -> None:
        coid = order.client_order_id
        # Stands in if this task is cancelled: the order may be out, so a cancel goes.
        result: PlaceResult = PlaceOutcomeUnknown(coid, 0)
        try:
            blockers = self._blockers(symbol, order)
            if blockers:
                await asyncio.gather(*(asyncio.shield(b) for b in blockers))
            placing = self._placing.get(coid)
            if placing is not None and placing.withdrawn:
                self.client.outcomes["place.withdrawn"] += 1
                result = OrderCancelled(coid, self.client.clock_ns())
            else:
                result = await self._send_place(symbol, order)
        finally:
            self._settle_placing(coid, result)
        await self._emit(result)

    async def _send_place(self, symbol: str, order: PlaceOrder) -> PlaceResult:
        coid = order.client_order_id
        instrument = self.instrument(symbol)
        gate = None if self.may_place is None else partial(self.may_place, symbol)
        placing = self._placing.get(coid)
        event = await self.client.place(
            order,
            symbol=symbol,
            price=decimal_str(instrument.price(order.price_ticks)),
            size=decimal_str(instrument.size(order.size_lots)),
            gate=lambda: (
                not (placing is not None and placing.withdrawn) and (gate is None or gate())
            ),
        )
        if isinstance(event, OrderAccepted):
            failpoint("place.answered")
        elif isinstance(event, PlaceOutcomeUnknown):
            self.unknown_since[coid] = time.monotonic()
            if len(self.unknown_since) > SETTLED_MEMORY:
                self.unknown_since.popitem(last=False)
        return event

    async def _cancel(
        self, symbol: str, cancel: CancelOrder, covered_by: asyncio.Future[Taken] | None = None
    ) -> None:
        """`covered_by`: a cancel-all of the order's account in the same batch (a
        pause or kill): the order is cancelled by it unless the cancel-all failed
        or did not find it (its placement not yet at the venue); one request per
        account instead of one per order, which at many members is most of a
        kill's requests."""
        coid = cancel.client_order_id
        try:
            if covered_by is not None:
                taken = await asyncio.shield(covered_by)
                if taken is not None and coid in taken:
                    self.saved["cancel"] += 1  # its OrderCancelled comes from the cancel-all
                    return
            placing = self._placing.get(coid)
            if placing is not None:
                # Not left yet: it never will. Out: its answer says whether the
                # venue may hold the order (the placement's own answer reaches the
                # engine either way).
                placing.withdrawn = True
                placed = await asyncio.shield(placing.answer)
                if isinstance(placed, OrderCancelled | OrderRejected):
                    self.saved["cancel"] += 1
                    return
            outcome = await self.client.cancel_outcome(
                coid, account_id=cancel.account_id, symbol=symbol
            )
        finally:
            self._cancel_done(symbol, coid)
        if outcome is not None:
            await self._emit(outcome)

    async def _cancel_all(self, symbol: str, account_id: str, seq: int) -> None:
        taken: Taken = None
        try:
            _, ids = await self.client.cancel_all_ids(account_id, symbol)
            taken = frozenset(ids)
        except OrderServiceUnavailable as exc:
            self.failures["cancel_all"] += 1
            logger.error("%s: cancel-all for %s failed: %s", symbol, account_id, exc)
            return
        finally:
            self._cancel_all_done(symbol, account_id, seq, taken)
        now = self.client.clock_ns()
        for coid in ids:
            await self._emit(OrderCancelled(coid, now))

    async def _query(self, symbol: str, query: QueryOrder) -> None:
        settled = self._settled.get(query.client_order_id)
        if settled is not None:
            self.saved["query"] += 1
            await self._emit(settled)  # the engine drops an order once, whatever it hears twice
            return
        if (
            query.client_order_id in self._cancelling[symbol]
            or query.client_order_id in self._placing
        ):
            self.saved["query"] += 1  # the request under way answers it; else the engine asks again
            return
        try:
            result = await self.client.query(query.client_order_id, query.account_id)
        except OrderServiceUnavailable:
            self.failures["query"] += 1
            return
        since = self.unknown_since.pop(query.client_order_id, None)
        if since is not None and self.on_resolved is not None:
            self.on_resolved(time.monotonic() - since)
        await self._emit(result)

    async def _snapshot(self, symbol: str) -> None:
        try:
            await self.client.request_snapshot(symbol)
        except OrderServiceUnavailable:
            self.failures["snapshot"] += 1
            logger.warning("%s: snapshot request failed", symbol)
