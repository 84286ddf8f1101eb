"""The Order Service client (contract: contracts/order-service.openapi.yaml).

How it keeps RELIABILITY.md's rules, answer by answer:

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

Every request waits for its turn in the request budget (budget.py).
Outcomes are counted in `OrderServiceClient.outcomes` ("place.accepted",
"cancel.not_found", ...) for metrics.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy
from opentelemetry.trace import SpanKind

from quoting_worker.adapters.order_service.budget import (
    RateBudget,
    RequestClass,
    retry_after_seconds,
)
from quoting_worker.core.types import (
    OrderAccepted,
    OrderCancelled,
    OrderQueryResult,
    OrderRejected,
    PlaceOrder,
    PlaceOutcomeUnknown,
    Side,
)
from telemetry import tracing

logger = logging.getLogger("quoting_worker.adapters.order_service")

ACCOUNT_TYPE = "SYSTEM_MARKET_MAKER"
LIVE_STATUSES = frozenset({"NEW", "OPEN", "PARTIALLY_FILLED"})
FINAL_STATUSES = frozenset({"FILLED", "CANCELLED", "REJECTED"})

PlaceResult = OrderAccepted | OrderRejected | PlaceOutcomeUnknown | OrderCancelled


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

    async def position(self, account_id: str, symbol: str) -> Decimal:
        """The account's signed position on `symbol` at the venue, base units."""
        response = await self._checked(
            RequestClass.QUERY,
            "GET",
            "/v1/positions",
            params={"account_id": account_id, "symbol": symbol},
        )
        raw = _body(response).get("position")
        try:
            return Decimal(str(raw))
        except InvalidOperation as exc:
            raise ValueError(f"the venue's position {raw!r} is not a decimal") from exc

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
